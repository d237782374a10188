"""DeLTA folders: ``img/`` + ``seg/`` (+ ``wei/``), or ``img/`` + ``segall/`` in a tracking set."""

from __future__ import annotations

from pathlib import Path

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets._listing import (
    EXPECTED_LAYOUTS,
    by_stem,
    listing,
    looked_for,
    note,
    rel,
    require_folders,
)
from napari_cellseg.io.datasets.samples import Dataset, Sample
from napari_cellseg.io.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS

DELTA_TRACKING_FOLDERS = ("previmg", "segall", "mot_dau")


def discover_delta(root: Path, require_masks: bool) -> Dataset:
    """The samples of a DeLTA folder (``img/`` + ``seg/``, optional ``wei/``)."""
    require_folders(root, ("img", "seg"), "DeLTA")
    warnings: list[str] = []
    tracking = [d for d in DELTA_TRACKING_FOLDERS if (root / d).is_dir()]
    mask_folder, weight_folder = "seg", root / "wei"
    use_weights = weight_folder.is_dir() and not tracking
    if tracking:
        if not (root / "segall").is_dir():
            raise CellsegError(
                f"{root} looks like a DeLTA tracking set ({', '.join(tracking)}/) but has no "
                "segall/ folder (all cells at time t), which segmentation training needs; "
                "add it, or remove the tracking folders if seg/ holds all cells"
            )
        mask_folder = "segall"
        warnings.append(
            f"{root} is a DeLTA tracking set: tracking training is not supported yet; "
            "using img/ + segall/ (all cells at time t) as segmentation pairs, without wei/"
        )
    images = by_stem(root / "img", IMAGE_EXTENSIONS)
    masks = by_stem(root / mask_folder, MASK_EXTENSIONS)
    weights = by_stem(weight_folder, IMAGE_EXTENSIONS) if use_weights else {}
    if not images:
        expected = f"; {EXPECTED_LAYOUTS}" if require_masks else ""
        raise CellsegError(
            f"no images found in {root / 'img'}: {looked_for(IMAGE_EXTENSIONS)}{expected}"
        )
    missing = [images[s] for s in images if s not in masks]
    if missing and require_masks:
        raise CellsegError(
            f"{len(missing)} image(s) in {root / 'img'} have no mask with the same name in "
            f"{root / mask_folder}: {listing(rel(root, f) for f in missing)}; DeLTA pairs "
            "files by name (extensions may differ)"
        )
    orphans = [masks[s] for s in masks if s not in images]
    note(warnings, orphans, root, f"{{n}} mask{{s}} in {mask_folder}/ without an image (ignored)")
    if weights:
        unweighted = [images[s] for s in images if s in masks and s not in weights]
        note(
            warnings, unweighted, root, "{n} sample{s} without a weight map in wei/ (weights=None)"
        )
    samples = [
        Sample(
            name=stem,
            image=image,
            mask=masks.get(stem),
            weights=weights.get(stem),
            binary_mask=True,
        )
        for stem, image in images.items()
    ]
    return Dataset(root, "delta", samples, warnings)
