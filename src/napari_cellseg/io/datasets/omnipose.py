"""Omnipose folders: ``<base><img_filter>.<ext>`` beside ``<base><mask_filter>.tif|.png`` and
optional ``<base>_links.txt``, in one folder or also one level down."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets._listing import (
    EXPECTED_LAYOUTS,
    list_files,
    list_subfolders,
    listing,
    looked_for,
    note,
    rel,
    relative_name,
)
from napari_cellseg.io.datasets.samples import Dataset, Sample
from napari_cellseg.io.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS
from napari_cellseg.io.links import LINKS_SUFFIX

#: Stem suffixes of files that model runs write beside images; never taken as images.
OUTPUT_SUFFIXES = (
    "_masks",
    "_cp_masks",
    "_cp_output",
    "_flows",
    "_dP",
    "_cellprob",
    "_bounds",
    "_boundary",
    "_outlines",
)


def discover_omnipose(
    root: Path, img_filter: str, mask_filter: str, look_one_level_down: bool, require_masks: bool
) -> Dataset:
    """The samples of an Omnipose folder (see :func:`.discover`)."""
    if not mask_filter:
        raise CellsegError("mask_filter must not be empty (Omnipose default: '_masks')")
    folders = [root] + (list_subfolders(root) if look_one_level_down else [])
    files = [f for folder in folders for f in list_files(folder, IMAGE_EXTENSIONS)]
    images, masks, skipped = _classify(files, img_filter, mask_filter)
    warnings: list[str] = []
    note(warnings, skipped["output"], root, "ignored {n} file{s} named like model outputs")
    note(warnings, skipped["filter"], root, f"ignored {{n}} file{{s}} not ending in {img_filter!r}")
    note(warnings, skipped["jpeg"], root, "ignored {n} JPEG mask{s} (lossy); use PNG or TIFF")
    if not images:
        raise CellsegError(
            _no_images_message(root, masks, skipped, img_filter, mask_filter, require_masks)
            + _subfolder_hint(root, look_one_level_down)
        )
    _refuse_ambiguous(root, images)
    samples, unmatched = [], []
    for (folder, base), (image,) in images.items():
        mask = _preferred_mask(masks.get((folder, base), []), warnings, root)
        if mask is None and require_masks:
            unmatched.append((folder, base))
            continue
        links = folder / f"{base}{LINKS_SUFFIX}"
        name = relative_name(root, folder, base)
        samples.append(Sample(name, image, mask, links if links.is_file() else None))
    orphans = [found[0] for key, found in masks.items() if key not in images]
    note(warnings, orphans, root, "{n} mask{s} without an image (ignored)")
    if unmatched:
        paired = [key for key in images if key in masks]
        missing = _drop_extra_channels(root, unmatched, paired, images, warnings)
        if missing:
            raise CellsegError(_unmatched_message(root, missing, orphans, mask_filter))
    return Dataset(root, "omnipose", samples, warnings)


def _classify(
    files: list[Path], img_filter: str, mask_filter: str
) -> tuple[dict[tuple[Path, str], list[Path]], dict[tuple[Path, str], list[Path]], dict]:
    """Sort Omnipose files into images and masks keyed by (folder, base), and skipped files
    (``output``: model outputs such as ``_flows``; ``filter``: not ending in ``img_filter``;
    ``jpeg``: masks saved as JPEG)."""
    images: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    masks: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    skipped: dict[str, list[Path]] = {"output": [], "filter": [], "jpeg": []}
    for f in files:
        outputs = [s for s in OUTPUT_SUFFIXES if _strip(f.stem, s) is not None]
        mask_base = _strip(f.stem, mask_filter)
        if any(len(s) > len(mask_filter) for s in outputs):
            mask_base = None  # e.g. A_cp_masks is a model output, not the mask of A_cp
        if mask_base is not None and f.suffix.lower() not in MASK_EXTENSIONS:
            skipped["jpeg"].append(f)
        elif mask_base is not None:
            masks[(f.parent, mask_base)].append(f)
        elif outputs:
            skipped["output"].append(f)
        elif img_filter and _strip(f.stem, img_filter) is None:
            skipped["filter"].append(f)
        else:
            images[(f.parent, _strip(f.stem, img_filter) or f.stem)].append(f)
    return images, masks, skipped


def _strip(stem: str, suffix: str) -> str | None:
    """``stem`` without ``suffix``, or None if it does not end with it (or is only it)."""
    if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
        return stem[: -len(suffix)]
    return None


def _preferred_mask(candidates: list[Path], warnings: list[str], root: Path) -> Path | None:
    if not candidates:
        return None
    ranked = sorted(candidates, key=lambda f: MASK_EXTENSIONS.index(f.suffix.lower()))
    if len(ranked) > 1:
        others = ", ".join(rel(root, f) for f in ranked[1:])
        warnings.append(f"{rel(root, ranked[0])} used as the mask; ignored {others}")
    return ranked[0]


def _refuse_ambiguous(root: Path, images: dict[tuple[Path, str], list[Path]]) -> None:
    clashes = [" and ".join(rel(root, f) for f in fs) for fs in images.values() if len(fs) > 1]
    if clashes:
        raise CellsegError(
            f"several images share one base name in {root}: {listing(clashes)}; "
            "keep one file per base name (the mask is matched by base name)"
        )


def _drop_extra_channels(
    root: Path,
    unmatched: list[tuple[Path, str]],
    paired: list[tuple[Path, str]],
    images: dict[tuple[Path, str], list[Path]],
    warnings: list[str],
) -> list[Path]:
    """Split images without a mask into extra channels of a paired image (``A_fluor.tif``
    beside ``A.tif`` + ``A_masks.tif``: a warning) and the rest, which are returned."""
    bases = defaultdict(list)
    for folder, base in paired:
        bases[folder].append(base + "_")
    extra, missing = [], []
    for folder, base in unmatched:
        is_extra = base.startswith(tuple(bases[folder]))
        (extra if is_extra else missing).append(images[(folder, base)][0])
    note(
        warnings,
        extra,
        root,
        "ignored {n} image{s} without a mask named like an extra channel of a paired image "
        "(<base>_<suffix> beside <base>)",
    )
    return missing


def _unmatched_message(
    root: Path, missing: list[Path], orphans: list[Path], mask_filter: str
) -> str:
    lines = [
        f"{len(missing)} image{'s' * (len(missing) != 1)} in {root} "
        f"{'have' if len(missing) != 1 else 'has'} no mask <base>{mask_filter}.tif/.png: "
        f"{listing(rel(root, f) for f in missing)}."
    ]
    if orphans:
        lines.append(f"Masks without an image: {listing(rel(root, f) for f in orphans)}.")
    lines.append(
        f"Name each mask after its image (A.tif -> A{mask_filter}.tif), set --mask_filter "
        "(and --img_filter) to the suffixes your files use, or move unlabelled images out."
    )
    return " ".join(lines)


def _no_images_message(
    root: Path,
    masks: dict[tuple[Path, str], list[Path]],
    skipped: dict[str, list[Path]],
    img_filter: str,
    mask_filter: str,
    require_masks: bool,
) -> str:
    """Why an Omnipose folder yields no image: for training, the pairs it needs; for
    prediction (``require_masks=False``), the image files it looks for. Both name the files
    that were left out, and why."""
    mask_files = [fs[0] for fs in masks.values()]
    if require_masks and mask_files:
        return (
            f"found masks ({listing(rel(root, f) for f in mask_files)}) but no images in "
            f"{root}; each <base>{mask_filter}.tif needs its image <base>.tif beside it"
        )
    if require_masks:
        message = f"no images found in {root}; {EXPECTED_LAYOUTS}"
    else:
        ending = f" with names ending in {img_filter!r} (--img_filter)" if img_filter else ""
        message = f"no images found in {root}: {looked_for(IMAGE_EXTENSIONS)}{ending}"
    left_out = [
        (skipped["filter"], f"not ending in {img_filter!r}"),
        (mask_files + skipped["jpeg"], f"named like masks (*{mask_filter})"),
        (skipped["output"], "named like model outputs (*_flows, *_cp_masks, ...)"),
    ]
    for files, why in left_out:
        if files:
            message += f"; {len(files)} file{'s' * (len(files) != 1)} {why} left out: "
            message += listing(rel(root, f) for f in files)
    return message


def _subfolder_hint(root: Path, look_one_level_down: bool) -> str:
    """Point to the subfolders of a folder without images (unless they were searched)."""
    subfolders = list_subfolders(root)
    if not subfolders or look_one_level_down:
        return ""
    return (
        f". It has subfolders ({listing(f.name for f in subfolders)}): point to one of them, "
        "or use --look_one_level_down to read them too"
    )
