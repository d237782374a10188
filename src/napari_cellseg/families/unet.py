"""DeLTA-style family: one binary-mask logit trained with a pixel-weighted cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.families.base import Family, param
from napari_cellseg.families.omni import sigmoid

if TYPE_CHECKING:
    import torch

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.models import ModelSpec
    from napari_cellseg.train.samples import TrainItem


def threshold_param() -> Any:
    """The probability threshold, shared by the families that predict probabilities."""
    return param(0.5, "probability threshold", minimum=0.0, maximum=1.0, step=0.05)


def min_size_param() -> Any:
    """The smallest object kept, shared by every family."""
    return param(15, "smallest object kept (pixels)", minimum=0, maximum=100_000)


@dataclass(frozen=True)
class UnetParams:
    """Reconstruction parameters of :func:`napari_cellseg.reconstruction.unet_masks`."""

    threshold: float = threshold_param()
    min_size: int = min_size_param()


class Unet(Family):
    """Binary mask logit, DeLTA style; touching cells split by a distance watershed."""

    name = "unet"
    summary = "DeLTA-style weighted U-Net (binary mask)"
    Params = UnetParams

    def n_outputs(self, spec: ModelSpec) -> int:
        """One logit."""
        return 1

    def targets(
        self,
        labels: np.ndarray,
        weights: np.ndarray | None,
        item: TrainItem,
        config: TrainConfig,
    ) -> np.ndarray:
        """Mask and weight map (``--weight_map``, or the ``wei/`` map)."""
        from napari_cellseg.targets.weights import unet_targets

        blobs = "ignore" if item.blobs else "object"
        return unet_targets(labels, weights, weight_map=config.weight_map, blobs=blobs)

    def loss(
        self, pred: torch.Tensor, target: torch.Tensor, config: TrainConfig
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:func:`napari_cellseg.losses.weighted_bce_loss`."""
        from napari_cellseg import losses

        return losses.weighted_bce_loss(pred, target, return_parts=True)

    def named_outputs(self, raw: np.ndarray, meta: dict[str, Any]) -> dict[str, np.ndarray]:
        """``prob``: the cell probability."""
        return {"prob": sigmoid(raw[0])}

    def reconstruct(
        self, outputs: dict[str, np.ndarray], params: Any, *, device: str = "cpu"
    ) -> np.ndarray:
        """:func:`napari_cellseg.reconstruction.unet_masks`."""
        from napari_cellseg.reconstruction import unet_masks

        return unet_masks(outputs["prob"], threshold=params.threshold, min_size=params.min_size)
