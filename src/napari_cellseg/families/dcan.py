"""CLB-style DCAN family: object and contour logits, seeds grown back into the objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.families.base import Family, LabelCrop, sigmoid
from napari_cellseg.families.unet import ProbabilityParams

if TYPE_CHECKING:
    import torch

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.families.base import LossParts, Outputs
    from napari_cellseg.models import ModelSpec


class Dcan(Family):
    """Object + contour logits (CLB's DCAN), its own two-branch network."""

    name = "dcan"
    summary = "CLB-style DCAN (object + contour)"
    Params = ProbabilityParams
    cite = (
        (
            "Chen H, Qi X, Yu L, Heng P-A. DCAN: Deep Contour-Aware Networks for Accurate Gland "
            "Segmentation. CVPR 2016, 2487-2496",
            "10.1109/CVPR.2016.273",
        ),
    )

    def n_outputs(self, spec: ModelSpec) -> int:
        """Object and contour logits."""
        return 2

    def build(self, spec: ModelSpec) -> torch.nn.Module:
        """:class:`napari_cellseg.models.dcan.DCAN`."""
        from napari_cellseg.models.dcan import DCAN

        return DCAN(spec)

    def config_problems(self, config: TrainConfig) -> list[str]:
        """The two loss weights cannot both be 0."""
        problems = super().config_problems(config)
        if config.obj_weight + config.bnd_weight <= 0:
            problems.append("--obj_weight and --bnd_weight cannot both be 0")
        return problems

    def targets(self, crop: LabelCrop, config: TrainConfig) -> np.ndarray:
        """Object and contour masks."""
        from napari_cellseg.targets.dcan import dcan_targets

        return dcan_targets(crop.labels, blobs="ignore" if crop.blobs else "object")

    def loss(self, pred: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> LossParts:
        """:func:`napari_cellseg.losses.dcan_loss` with the configured weights."""
        from napari_cellseg import losses

        return losses.dcan_loss(
            pred,
            target,
            obj_weight=config.obj_weight,
            bnd_weight=config.bnd_weight,
            final_act=config.dcan_final_act,
            return_parts=True,
        )

    def output_channels(self, spec: ModelSpec, meta: dict[str, Any]) -> list[tuple[str, str]]:
        """Object and contour, read through the activation the model trained with."""
        prob = "sigmoid(v)" if _final_act(meta) == "sigmoid" else "(tanh(v) + 1) / 2"
        return [
            (name, f"{name} value v; its probability is {prob} (threshold 0.5)")
            for name in ("object", "contour")
        ]

    def named_outputs(self, raw: np.ndarray, meta: dict[str, Any]) -> Outputs:
        """``object`` and ``contour`` probabilities, through the activation it trained with."""
        probs = sigmoid(raw) if _final_act(meta) == "sigmoid" else (np.tanh(raw) + 1) / 2
        return {"object": probs[0], "contour": probs[1]}

    def reconstruct(self, outputs: Outputs, params: Any, *, device: str = "cpu") -> np.ndarray:
        """:func:`napari_cellseg.reconstruction.dcan_masks`."""
        from napari_cellseg.reconstruction import dcan_masks

        return dcan_masks(
            outputs["object"],
            outputs["contour"],
            threshold=params.threshold,
            min_size=params.min_size,
        )


def _final_act(meta: dict[str, Any]) -> str:
    """The final activation a DCAN model trained with (``tanh`` or ``sigmoid``)."""
    return meta.get("dcan_final_act") or (meta.get("training") or {}).get("dcan_final_act", "tanh")
