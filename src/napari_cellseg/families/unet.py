"""DeLTA-style family: one binary-mask logit trained with a pixel-weighted cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.families.base import Family, LabelCrop, min_size_param, param, sigmoid

if TYPE_CHECKING:
    import torch

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.families.base import LossParts, Outputs
    from napari_cellseg.models import ModelSpec


@dataclass(frozen=True)
class ProbabilityParams:
    """Reconstruction parameters of the families that predict probabilities
    (:func:`~napari_cellseg.reconstruction.unet_masks`,
    :func:`~napari_cellseg.reconstruction.dcan_masks`)."""

    threshold: float = param(0.5, "probability threshold", minimum=0.0, maximum=1.0, step=0.05)
    min_size: int = min_size_param()


class Unet(Family):
    """Binary mask logit, DeLTA style; touching cells split by a distance watershed."""

    name = "unet"
    summary = "DeLTA-style weighted U-Net (binary mask)"
    Params = ProbabilityParams
    cite = (
        (
            "Lugagne J-B, Lin H, Dunlop MJ. DeLTA: Automated cell segmentation, tracking, and "
            "lineage reconstruction using deep learning. PLoS Comput Biol 16(4): e1007673 (2020)",
            "10.1371/journal.pcbi.1007673",
        ),
    )

    def n_outputs(self, spec: ModelSpec) -> int:
        """One logit."""
        return 1

    def targets(self, crop: LabelCrop, config: TrainConfig) -> np.ndarray:
        """Mask and weight map (``--weight_map``, or the ``wei/`` map)."""
        from napari_cellseg.targets.weights import unet_targets

        blobs = "ignore" if crop.blobs else "object"
        return unet_targets(crop.labels, crop.weights, weight_map=config.weight_map, blobs=blobs)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> LossParts:
        """:func:`napari_cellseg.losses.weighted_bce_loss`."""
        from napari_cellseg import losses

        return losses.weighted_bce_loss(pred, target, return_parts=True)

    def output_channels(self, spec: ModelSpec, meta: dict[str, Any]) -> list[tuple[str, str]]:
        """The cell logit."""
        return [("cell", "logit of the cell probability (sigmoid; cell where it exceeds 0.5)")]

    def named_outputs(self, raw: np.ndarray, meta: dict[str, Any]) -> Outputs:
        """``prob``: the cell probability."""
        return {"prob": sigmoid(raw[0])}

    def reconstruct(self, outputs: Outputs, params: Any, *, device: str = "cpu") -> np.ndarray:
        """:func:`napari_cellseg.reconstruction.unet_masks`."""
        from napari_cellseg.reconstruction import unet_masks

        return unet_masks(outputs["prob"], threshold=params.threshold, min_size=params.min_size)
