"""The crop size and the number of epochs the Train widget suggests for the chosen data.

The crop is the largest multiple of :data:`CROP_STEP` that fits in every chosen frame, at most
:data:`MAX_CROP` (the ``tyx`` default). The epochs make a first run on a CPU take about
:data:`CPU_BUDGET_S` (a few minutes: long enough to see the loss fall and the preview find
cells, short enough to try again); on a GPU the ``n_epochs`` default stands. The CPU estimate
is :data:`CPU_S_PER_MEGAPIXEL` per crop pixel at the default network width, scaled by the
square of the first level's width; a run measures its own time (the ETA), this only sets the
starting value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from napari_cellseg.config import TrainConfig
from napari_cellseg.models import ModelSpec
from napari_cellseg.options import default_of

_FIELDS = TrainConfig.__dataclass_fields__
#: Largest crop side suggested (pixels).
MAX_CROP = default_of(_FIELDS["tyx"])[0]
#: Crop sides are multiples of this (the U-Net's downsampling and then some).
CROP_STEP = 16
#: Seconds of CPU training per megapixel of crops at the default width: 0.25 s a 224 x 224
#: crop (forward, backward, targets and augmentation), measured on 2 cores.
CPU_S_PER_MEGAPIXEL = 5.0
#: How long a first CPU run should take (seconds).
CPU_BUDGET_S = 180.0
#: Fewest epochs suggested (the default learning-rate warm-up takes 5).
MIN_EPOCHS = 10
DEFAULT_EPOCHS = default_of(_FIELDS["n_epochs"])
DEFAULT_WIDTH = ModelSpec.__dataclass_fields__["nbase"].default[0]


@dataclass(frozen=True)
class Suggestion:
    """Suggested options and why (shown in the editors' tooltips).

    Attributes
    ----------
    crop
        Side of the square training crop (``tyx``).
    epochs
        ``n_epochs``.
    why_crop, why_epochs
        The reasons, for people.
    """

    crop: int
    epochs: int
    why_crop: str
    why_epochs: str


def suggested_crop(frame_shapes: Sequence[tuple[int, int]]) -> int:
    """The largest multiple of :data:`CROP_STEP` at most :data:`MAX_CROP` and at most the
    smallest frame side (:data:`CROP_STEP` for smaller frames, which training pads)."""
    side = min(min(shape) for shape in frame_shapes)
    return max(CROP_STEP, min(side, MAX_CROP) // CROP_STEP * CROP_STEP)


def suggest(
    frame_shapes: Sequence[tuple[int, int]],
    config: TrainConfig,
    accelerator: bool,
) -> Suggestion:
    """The crop and the epochs for training frames of ``frame_shapes`` with ``config``.

    Parameters
    ----------
    frame_shapes
        ``(Y, X)`` of each training frame (one per frame of a stack).
    config
        The other options (batch size, crops per epoch, augmented copies, network width).
    accelerator
        Whether training runs on a GPU.

    Returns
    -------
    Suggestion
        The values and the reasons.
    """
    crop = suggested_crop(frame_shapes)
    smallest = min(min(shape) for shape in frame_shapes)
    why_crop = (
        f"Suggested: {crop} x {crop}, the largest multiple of {CROP_STEP} up to {MAX_CROP} "
        f"that fits the smallest training frame side ({smallest} px)."
    )
    # crops per epoch as napari_cellseg.train.batches.crops_per_epoch counts them
    n_crops = config.nimg_per_epoch or max(
        len(frame_shapes) * (1 + config.augments), config.batch_size
    )
    if accelerator:
        why = f"Suggested: the default {DEFAULT_EPOCHS} epochs, as training runs on a GPU."
        return Suggestion(crop, DEFAULT_EPOCHS, why_crop, why)
    width = (config.nbase or (DEFAULT_WIDTH,))[0]
    epoch_s = n_crops * crop * crop / 1e6 * CPU_S_PER_MEGAPIXEL * (width / DEFAULT_WIDTH) ** 2
    epochs = min(DEFAULT_EPOCHS, max(MIN_EPOCHS, math.floor(CPU_BUDGET_S / epoch_s)))
    why_epochs = (
        f"Suggested for a CPU: {epochs} epochs of {n_crops} crops of {crop} x {crop} take "
        f"about {_minutes(epochs * epoch_s)} (estimated at {CPU_S_PER_MEGAPIXEL:g} s per "
        f"megapixel of crops on 2 cores; the run shows its real ETA), aiming at "
        f"{_minutes(CPU_BUDGET_S)} for a first try."
    )
    return Suggestion(crop, epochs, why_crop, why_epochs)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


#: Where models go when no output file is given.
DEFAULT_MODEL_DIR = Path.home() / "cellseg-models"


def default_model_path(arch: str) -> Path:
    """A new model file in :data:`DEFAULT_MODEL_DIR`: ``cellseg_<arch>_<time>.pt`` (with a
    number added when that name is taken)."""
    stem = f"cellseg_{arch}_{datetime.now().strftime('%Y_%m_%d_%H_%M_%S')}"
    path, n = DEFAULT_MODEL_DIR / f"{stem}.pt", 1
    while path.exists() or path.with_suffix(".yaml").exists():
        n += 1
        path = DEFAULT_MODEL_DIR / f"{stem}_{n}.pt"
    return path
