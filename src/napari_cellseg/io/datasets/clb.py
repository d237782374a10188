"""CLB folders: multi-page TIFFs of one name in ``images/`` and ``labels/``, a sample per page."""

from __future__ import annotations

from pathlib import Path

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets._listing import by_stem, listing, note, rel, require_folders
from napari_cellseg.io.datasets.samples import Dataset, Sample
from napari_cellseg.io.images import TIFF_EXTENSIONS, tiff_page_count


def discover_clb(root: Path, require_masks: bool) -> Dataset:
    """The samples of a CLB folder: one per page of ``images/`` + ``labels/``."""
    require_folders(root, ("images", "labels"), "CLB")
    images = by_stem(root / "images", TIFF_EXTENSIONS)
    labels = by_stem(root / "labels", TIFF_EXTENSIONS)
    if not images:
        raise CellsegError(
            f"no TIFF files in {root / 'images'}; CLB data are multi-page TIFFs in images/ "
            "and labels/ with the same file names"
        )
    missing = [images[s] for s in images if s not in labels]
    if missing and require_masks:
        raise CellsegError(
            f"{len(missing)} file(s) in {root / 'images'} have no label file with the same "
            f"name in {root / 'labels'}: {listing(rel(root, f) for f in missing)}"
        )
    warnings: list[str] = []
    orphans = [labels[s] for s in labels if s not in images]
    note(warnings, orphans, root, "{n} label file{s} without an image file (ignored)")
    samples, mismatched = [], []
    for stem, image in images.items():
        mask = labels.get(stem)
        pages = tiff_page_count(image)
        if mask is not None and (mask_pages := tiff_page_count(mask)) != pages:
            mismatched.append(f"{rel(root, image)} has {pages}, {rel(root, mask)} {mask_pages}")
            continue
        samples += [Sample(f"{stem}#{p}", image, mask, page=p) for p in range(pages)]
    if mismatched:
        raise CellsegError(
            f"image and label files in {root} hold different numbers of pages (one page per "
            f"sample): {listing(mismatched)}; each image page needs its label page"
        )
    return Dataset(root, "clb", samples, warnings)
