"""Omnipose-style family: flow + distance (+ boundary) fields, reconstructed by following flows."""

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
class OmniParams:
    """Reconstruction parameters of :func:`napari_cellseg.reconstruction.omni_masks`."""

    mask_threshold: float = param(
        0.0,
        "distance threshold for foreground; lower it to grow masks, raise it to shrink them",
        minimum=-10.0,
        maximum=10.0,
        step=0.05,
    )
    flow_threshold: float = param(
        0.4,
        "drop masks whose flows disagree with the mask's own by more than this "
        "(mean squared error; 0 disables the check)",
        minimum=0.0,
        maximum=10.0,
        step=0.05,
    )
    niter: int | None = param(
        None, "Euler steps along the flow (automatic: 10)", minimum=0, maximum=1000
    )
    min_size: int = min_size_param()


class Omni(Family):
    """Flow + distance (+ boundary) fields, Omnipose style."""

    name = "omni"
    summary = "Omnipose-style flow + distance (+ boundary) fields"
    Params = OmniParams
    uses_nclasses = True
    cite = (
        (
            "Cutler KJ et al. Omnipose: a high-precision morphology-independent solution for "
            "bacterial cell segmentation. Nature Methods 19, 1438-1448 (2022)",
            "10.1038/s41592-022-01639-4",
        ),
    )

    def n_outputs(self, spec: ModelSpec) -> int:
        """``dim`` flow components, the distance, and the boundary with ``nclasses`` 3."""
        return spec.dim + 1 + (spec.nclasses == 3)

    def spec_problems(self, spec: ModelSpec) -> list[str]:
        """nclasses must be 2 or 3."""
        if spec.nclasses not in (2, 3):
            return [f"nclasses {spec.nclasses} is not 2 (flow + distance) or 3 (+ boundary)"]
        return []

    def config_problems(self, config: TrainConfig) -> list[str]:
        """``--nclasses`` 2 or 3."""
        if config.nclasses not in (2, 3):
            return [
                f"--nclasses {config.nclasses} is not available for omni models: use 2 "
                "(flow + distance) or 3 (+ boundary). nclasses is not a number of cell types."
            ]
        return []

    def targets(self, crop: LabelCrop, config: TrainConfig) -> np.ndarray:
        """Flows, distance (+ boundary) and the loss weight; CLB blobs get no loss."""
        from napari_cellseg.targets.omni import omni_targets

        ignore = crop.labels == 1 if crop.blobs else None
        lab = np.where(ignore, 0, crop.labels) if ignore is not None else crop.labels
        y = omni_targets(lab, set(crop.links) or None)
        if ignore is not None and ignore.any():
            y[-1][ignore] = 0.0  # the weight channel: no loss on blobs
        return y

    def loss(self, pred: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> LossParts:
        """:func:`napari_cellseg.losses.omni_loss`."""
        from napari_cellseg import losses

        return losses.omni_loss(pred, target, config.nclasses, return_parts=True)

    def rescale_outputs(self, raw: np.ndarray, factor: float) -> np.ndarray:
        """Distances back to the image's pixels."""
        raw[2] /= factor
        return raw

    def output_channels(self, spec: ModelSpec, meta: dict[str, Any]) -> list[tuple[str, str]]:
        """Unit flow (y, x), scaled distance and, with ``nclasses`` 3, the boundary logit."""
        from napari_cellseg.targets.omni import DIST_SCALE

        flow = "component of the unit flow field, which points from the cell edges to its skeleton"
        channels = [
            ("flow_y", f"y {flow}"),
            ("flow_x", f"x {flow}"),
            (
                "dist",
                f"distance to the cell edge in pixels divided by {DIST_SCALE:g} (negative in "
                "the background); foreground where the distance in pixels exceeds mask_threshold "
                "(0)",
            ),
        ]
        if spec.nclasses == 3:
            channels.append(("boundary", "logit of the cell-boundary probability"))
        return channels

    def named_outputs(self, raw: np.ndarray, meta: dict[str, Any]) -> Outputs:
        """``flow`` (2, Y, X), ``dist`` in pixels and the ``boundary`` probability."""
        from napari_cellseg.targets.omni import DIST_SCALE

        out = {"flow": raw[:2], "dist": raw[2] * DIST_SCALE}
        if raw.shape[0] > 3:
            out["boundary"] = sigmoid(raw[3])
        return out

    def reconstruct(self, outputs: Outputs, params: Any, *, device: str = "cpu") -> np.ndarray:
        """:func:`napari_cellseg.reconstruction.omni_masks`."""
        from napari_cellseg.reconstruction import omni_masks

        return omni_masks(
            outputs["flow"],
            outputs["dist"],
            outputs.get("boundary"),
            device=device,
            mask_threshold=params.mask_threshold,
            flow_threshold=params.flow_threshold,
            niter=params.niter,
            min_size=params.min_size,
        )
