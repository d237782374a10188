"""Dataset discovery: find image/mask pairs in the folder layouts of Omnipose, DeLTA, CLB and
the Cell Tracking Challenge.

:func:`discover` only lists files (plus page counts for CLB); it does not decode images.
:func:`check_shapes` compares image and mask sizes from the file headers, and
:func:`load_sample` checks the pair it loads. Layouts (``convention``):

``omnipose``
    ``<base><img_filter>.<ext>`` + ``<base><mask_filter>.tif|.tiff|.png`` (TIFF preferred) +
    optional ``<base>_links.txt`` in one folder, or also one level down with
    ``look_one_level_down`` (then names are ``<subfolder>/<base>``).
``delta``
    ``img/`` + ``seg/`` (+ optional ``wei/``), matched by file stem; extensions may differ.
    ``seg/`` masks may be binary (0/255): :func:`load_mask` labels their connected components.
    In a tracking set (``previmg/``, ``segall/``, ``mot_dau/``) the segmentation pairs are
    ``img/`` + ``segall/`` (all cells at time t).
``clb``
    ``images/`` + ``labels/`` multi-page TIFFs with the same stem, one sample per page
    (names ``<stem>#<page>``).
``ctc``
    Cell Tracking Challenge: ``<seq>/tNNN.tif`` + ``<seq>_GT/SEG/man_segNNN.tif``; only frames
    with a SEG file are samples. The path may be the dataset folder (holding ``01``,
    ``01_GT``, ...), a sequence folder (``01``) or its ``01_GT`` folder.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    TIFF_EXTENSIONS,
    frame_layout,
    read_image,
    read_mask,
    read_mask_page,
    read_shape,
    read_tiff_page,
    tiff_page_count,
)
from napari_cellseg.io.links import LINKS_SUFFIX, read_links

CONVENTIONS = ("omnipose", "delta", "clb", "ctc")
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
DELTA_TRACKING_FOLDERS = ("previmg", "segall", "mot_dau")

_LIST_LIMIT = 10
_CTC_SEQUENCE = re.compile(r"\d+")
_CTC_FRAME = re.compile(r"t(\d+)\.tiff?", re.IGNORECASE)
_CTC_SEG = re.compile(r"man_seg(\d+)\.tiff?", re.IGNORECASE)
_CTC_SEG_SLICE = re.compile(r"man_seg_?\d+_\d+\.tiff?", re.IGNORECASE)
_EXPECTED_LAYOUTS = (
    "expected <base>.tif + <base>_masks.tif pairs (Omnipose), img/ + seg/ folders (DeLTA), "
    "images/ + labels/ multi-page TIFFs (CLB) or 01/tNNN.tif + 01_GT/SEG/man_segNNN.tif "
    "(Cell Tracking Challenge)"
)


@dataclass(frozen=True)
class Sample:
    """One training or prediction item: an image file, its mask and companions.

    Attributes
    ----------
    name : str
        Unique within the dataset (base name; ``<subfolder>/<base>`` one level down; CLB
        ``<stem>#<page>``; CTC ``<seq>/tNNN``).
    image : pathlib.Path
        The image file.
    mask : pathlib.Path or None
        The label file, or None (prediction folders, ``require_masks=False``).
    links : pathlib.Path or None
        Omnipose ``<base>_links.txt``.
    weights : pathlib.Path or None
        DeLTA weight map (``wei/``).
    page : int or None
        CLB: page of ``image`` and ``mask`` that holds this sample.
    binary_mask : bool
        The mask may be a binary foreground image (DeLTA ``seg/``): if it holds a single
        non-zero value, :func:`load_mask` labels its connected components.
    """

    name: str
    image: Path
    mask: Path | None
    links: Path | None = None
    weights: Path | None = None
    page: int | None = None
    binary_mask: bool = False


@dataclass
class Dataset:
    """The samples found in a folder, with notes about what was skipped or is partial.

    Attributes
    ----------
    root : pathlib.Path
        The resolved folder given to :func:`discover`.
    convention : str
        ``'omnipose'``, ``'delta'``, ``'clb'`` or ``'ctc'``.
    samples : list of Sample
        In natural order of their names.
    warnings : list of str
        Non-fatal findings (masks without image, ignored files, sparse labels, ...).
    """

    root: Path
    convention: str
    samples: list[Sample]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


# --------------------------------------------------------------------------- discovery


def discover(
    path: str | os.PathLike,
    convention: str = "auto",
    *,
    img_filter: str = "",
    mask_filter: str = "_masks",
    look_one_level_down: bool = False,
    require_masks: bool = True,
) -> Dataset:
    """Find the samples of a dataset folder.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder; relative paths are resolved against the working directory.
    convention : str
        ``'auto'`` (see :func:`detect_convention`), ``'omnipose'``, ``'delta'``, ``'clb'`` or
        ``'ctc'``.
    img_filter : str
        Omnipose: suffix of image stems (``'_img'`` for ``A_img.tif``); other files are
        ignored.
    mask_filter : str
        Omnipose: suffix of mask stems.
    look_one_level_down : bool
        Omnipose: also take pairs from the immediate subfolders.
    require_masks : bool
        True (training): an image without a mask is an error. False (prediction): it becomes
        a sample with ``mask=None``.

    Returns
    -------
    Dataset
        At least one sample.

    Raises
    ------
    CellsegError
        If the folder is missing or holds no usable sample, a layout folder is missing,
        names are ambiguous, images lack masks (``require_masks``), or CLB page counts differ.
    """
    root = _resolve_folder(path)
    if convention == "auto":
        convention = detect_convention(root)
    if convention not in CONVENTIONS:
        raise CellsegError(
            f"unknown dataset convention {convention!r}; use one of auto, {', '.join(CONVENTIONS)}"
        )
    if convention == "omnipose":
        dataset = _discover_omnipose(
            root, img_filter, mask_filter, look_one_level_down, require_masks
        )
    else:
        finder = {"delta": _discover_delta, "clb": _discover_clb, "ctc": _discover_ctc}
        dataset = finder[convention](root, require_masks)
    dataset.samples.sort(key=lambda s: _natural_key(s.name))
    return dataset


def detect_convention(path: str | os.PathLike) -> str:
    """Guess a dataset folder's convention from its structure.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder.

    Returns
    -------
    str
        ``'delta'`` if it has ``img/`` and ``seg/``; ``'clb'`` if it has ``images/`` and
        ``labels/``; ``'ctc'`` if it is, holds or belongs to a Cell Tracking Challenge
        sequence with ground truth (``01/tNNN.tif`` + ``01_GT/``); otherwise ``'omnipose'``
        (a sequence without ``_GT`` needs ``convention='ctc'``).
    """
    root = Path(path)
    if (root / "img").is_dir() and (root / "seg").is_dir():
        return "delta"
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "clb"
    if any(gt.is_dir() for _, gt in _ctc_sequences(root)):
        return "ctc"
    return "omnipose"


def _resolve_folder(path: str | os.PathLike) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        where = "" if root.is_absolute() else f" (relative to {Path.cwd()})"
        raise CellsegError(f"dataset folder {root} does not exist{where}; check the path")
    if not root.is_dir():
        raise CellsegError(f"{root} is a file; give the folder that holds the dataset")
    return root.resolve()


# --------------------------------------------------------------------------- omnipose


def _discover_omnipose(
    root: Path, img_filter: str, mask_filter: str, look_one_level_down: bool, require_masks: bool
) -> Dataset:
    if not mask_filter:
        raise CellsegError("mask_filter must not be empty (Omnipose default: '_masks')")
    folders = [root] + (_subfolders(root) if look_one_level_down else [])
    files = [f for folder in folders for f in _files(folder, IMAGE_EXTENSIONS)]
    images, masks, skipped = _classify(files, img_filter, mask_filter)
    warnings: list[str] = []
    _note(warnings, skipped["output"], root, "ignored {n} file{s} named like model outputs")
    _note(
        warnings, skipped["filter"], root, f"ignored {{n}} file{{s}} not ending in {img_filter!r}"
    )
    _note(warnings, skipped["jpeg"], root, "ignored {n} JPEG mask{s} (lossy); use PNG or TIFF")
    if not images:
        raise CellsegError(_no_images_message(root, masks, mask_filter))
    _refuse_ambiguous(root, images)
    samples, unmatched = [], []
    for (folder, base), (image,) in images.items():
        mask = _preferred_mask(masks.get((folder, base), []), warnings, root)
        if mask is None and require_masks:
            unmatched.append((folder, base))
            continue
        links = folder / f"{base}{LINKS_SUFFIX}"
        name = _relative_name(root, folder, base)
        samples.append(Sample(name, image, mask, links if links.is_file() else None))
    orphans = [found[0] for key, found in masks.items() if key not in images]
    _note(warnings, orphans, root, "{n} mask{s} without an image (ignored)")
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
        others = ", ".join(_rel(root, f) for f in ranked[1:])
        warnings.append(f"{_rel(root, ranked[0])} used as the mask; ignored {others}")
    return ranked[0]


def _refuse_ambiguous(root: Path, images: dict[tuple[Path, str], list[Path]]) -> None:
    clashes = [" and ".join(_rel(root, f) for f in fs) for fs in images.values() if len(fs) > 1]
    if clashes:
        raise CellsegError(
            f"several images share one base name in {root}: {_listing(clashes)}; "
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
    _note(
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
        f"{_listing(_rel(root, f) for f in missing)}."
    ]
    if orphans:
        lines.append(f"Masks without an image: {_listing(_rel(root, f) for f in orphans)}.")
    lines.append(
        f"Name each mask after its image (A.tif -> A{mask_filter}.tif), set --mask_filter "
        "(and --img_filter) to the suffixes your files use, or move unlabelled images out."
    )
    return " ".join(lines)


def _no_images_message(
    root: Path, masks: dict[tuple[Path, str], list[Path]], mask_filter: str
) -> str:
    if masks:
        found = _listing(_rel(root, fs[0]) for fs in masks.values())
        return (
            f"found masks ({found}) but no images in {root}; each <base>{mask_filter}.tif "
            "needs its image <base>.tif beside it"
        )
    message = f"no images found in {root}; {_EXPECTED_LAYOUTS}"
    subfolders = _subfolders(root)
    if subfolders:
        names = _listing(f.name for f in subfolders)
        message += (
            f". It has subfolders ({names}): point to one of them, or use "
            "--look_one_level_down for Omnipose pairs one level down"
        )
    return message


# --------------------------------------------------------------------------- delta


def _discover_delta(root: Path, require_masks: bool) -> Dataset:
    _require_folders(root, ("img", "seg"), "DeLTA")
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
    images = _by_stem(root / "img", IMAGE_EXTENSIONS)
    masks = _by_stem(root / mask_folder, MASK_EXTENSIONS)
    weights = _by_stem(weight_folder, IMAGE_EXTENSIONS) if use_weights else {}
    if not images:
        raise CellsegError(f"no images found in {root / 'img'}; {_EXPECTED_LAYOUTS}")
    missing = [images[s] for s in images if s not in masks]
    if missing and require_masks:
        raise CellsegError(
            f"{len(missing)} image(s) in {root / 'img'} have no mask with the same name in "
            f"{root / mask_folder}: {_listing(_rel(root, f) for f in missing)}; DeLTA pairs "
            "files by name (extensions may differ)"
        )
    orphans = [masks[s] for s in masks if s not in images]
    _note(warnings, orphans, root, f"{{n}} mask{{s}} in {mask_folder}/ without an image (ignored)")
    if weights:
        unweighted = [images[s] for s in images if s in masks and s not in weights]
        _note(
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


# --------------------------------------------------------------------------- clb


def _discover_clb(root: Path, require_masks: bool) -> Dataset:
    _require_folders(root, ("images", "labels"), "CLB")
    images = _by_stem(root / "images", TIFF_EXTENSIONS)
    labels = _by_stem(root / "labels", TIFF_EXTENSIONS)
    if not images:
        raise CellsegError(
            f"no TIFF files in {root / 'images'}; CLB data are multi-page TIFFs in images/ "
            "and labels/ with the same file names"
        )
    missing = [images[s] for s in images if s not in labels]
    if missing and require_masks:
        raise CellsegError(
            f"{len(missing)} file(s) in {root / 'images'} have no label file with the same "
            f"name in {root / 'labels'}: {_listing(_rel(root, f) for f in missing)}"
        )
    warnings: list[str] = []
    orphans = [labels[s] for s in labels if s not in images]
    _note(warnings, orphans, root, "{n} label file{s} without an image file (ignored)")
    samples, mismatched = [], []
    for stem, image in images.items():
        mask = labels.get(stem)
        pages = tiff_page_count(image)
        if mask is not None and (mask_pages := tiff_page_count(mask)) != pages:
            mismatched.append(f"{_rel(root, image)} has {pages}, {_rel(root, mask)} {mask_pages}")
            continue
        samples += [Sample(f"{stem}#{p}", image, mask, page=p) for p in range(pages)]
    if mismatched:
        raise CellsegError(
            f"image and label files in {root} hold different numbers of pages (one page per "
            f"sample): {_listing(mismatched)}; each image page needs its label page"
        )
    return Dataset(root, "clb", samples, warnings)


# --------------------------------------------------------------------------- ctc


def _ctc_sequences(root: Path) -> list[tuple[Path, Path]]:
    """(sequence folder, ground-truth folder) pairs for a CTC dataset, sequence or GT folder."""
    if root.name.endswith("_GT") and _CTC_SEQUENCE.fullmatch(root.name[:-3]):
        seq = root.with_name(root.name[:-3])
        return [(seq, root)] if _has_ctc_frames(seq) else []
    if _CTC_SEQUENCE.fullmatch(root.name) and _has_ctc_frames(root):
        return [(root, root.with_name(f"{root.name}_GT"))]
    return [
        (folder, folder.with_name(f"{folder.name}_GT"))
        for folder in _subfolders(root)
        if _CTC_SEQUENCE.fullmatch(folder.name) and _has_ctc_frames(folder)
    ]


def _has_ctc_frames(folder: Path) -> bool:
    return folder.is_dir() and any(_CTC_FRAME.fullmatch(f.name) for f in folder.iterdir())


def _discover_ctc(root: Path, require_masks: bool) -> Dataset:
    sequences = _ctc_sequences(root)
    if not sequences:
        raise CellsegError(
            f"no Cell Tracking Challenge sequence in {root}; expected a folder 01/ with "
            "tNNN.tif frames beside 01_GT/SEG/man_segNNN.tif"
        )
    samples: list[Sample] = []
    warnings: list[str] = []
    for seq, gt in sequences:
        samples += _ctc_sequence_samples(seq, gt, require_masks, warnings)
    if not samples:
        raise CellsegError(
            f"no frame in {root} has a segmentation (<seq>_GT/SEG/man_segNNN.tif); "
            "to predict on the frames, discover them with require_masks=False"
        )
    return Dataset(root, "ctc", samples, warnings)


def _ctc_sequence_samples(
    seq: Path, gt: Path, require_masks: bool, warnings: list[str]
) -> list[Sample]:
    frames = _numbered(seq, _CTC_FRAME)
    seg_dir = gt / "SEG"
    segs = _numbered(seg_dir, _CTC_SEG) if seg_dir.is_dir() else {}
    if not segs and require_masks:
        warnings.append(f"{seq.name}: no segmentation ground truth in {seg_dir}; skipped")
    elif segs:
        warnings.append(
            f"{seq.name}: segmentation labels are sparse: {len(set(segs) & set(frames))} of "
            f"{len(frames)} frames have {gt.name}/SEG/man_seg*.tif, and not every cell is "
            "outlined in each; score recall / matched IoU (or the CTC SEG measure) on them"
        )
    orphans = sorted(set(segs) - set(frames))
    if orphans:
        warnings.append(
            f"{seq.name}: SEG files without a frame (ignored): "
            f"{_listing(segs[n].name for n in orphans)}"
        )
    if seg_dir.is_dir() and any(_CTC_SEG_SLICE.fullmatch(f.name) for f in seg_dir.iterdir()):
        warnings.append(f"{seq.name}: 3D slice annotations man_seg_T_Z.tif are not used yet")
    tra = gt / "TRA"
    if tra.is_dir():
        count = sum(1 for f in tra.iterdir() if f.name.startswith("man_track") and f.suffix)
        warnings.append(
            f"{seq.name}: tracking ground truth in {gt.name}/TRA ({count} files) is not used yet"
        )
    return [
        Sample(f"{seq.name}/{frame.stem}", frame, segs.get(n))
        for n, frame in frames.items()
        if n in segs or not require_masks
    ]


def _numbered(folder: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
    matches = ((pattern.fullmatch(f.name), f) for f in folder.iterdir() if f.is_file())
    return {int(m.group(1)): f for m, f in matches if m}


# --------------------------------------------------------------------------- loading


def load_image(sample: Sample) -> np.ndarray:
    """Read a sample's image in its native dtype and layout.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.

    Returns
    -------
    numpy.ndarray
        As :func:`~napari_cellseg.io.images.read_image`; for CLB the sample's page.
    """
    if sample.page is not None:
        return read_tiff_page(sample.image, sample.page)
    return read_image(sample.image)


def load_mask(sample: Sample) -> np.ndarray:
    """Read a sample's label matrix.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`, with a mask.

    Returns
    -------
    numpy.ndarray
        Integer labels (int32, or int64 if needed); for CLB the sample's page; a binary DeLTA
        mask becomes one label per 4-connected component.

    Raises
    ------
    CellsegError
        If the sample has no mask or the mask is not a label matrix.
    """
    if sample.mask is None:
        raise CellsegError(f"sample {sample.name} ({sample.image}) has no mask")
    if sample.page is not None:
        labels = read_mask_page(sample.mask, sample.page)
    else:
        labels = read_mask(sample.mask)
    return _label_if_binary(labels) if sample.binary_mask else labels


def load_links(sample: Sample, labels: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Read a sample's links, validated against its mask.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.
    labels : numpy.ndarray, optional
        The sample's labels if already loaded (saves reading the mask again).

    Returns
    -------
    set of tuple of int
        Linked label pairs ``(a, b)``, ``a < b``; empty when the sample has no links file.
    """
    if sample.links is None:
        return set()
    return read_links(sample.links, labels=load_mask(sample) if labels is None else labels)


def load_weights(sample: Sample) -> np.ndarray | None:
    """Read a sample's DeLTA weight map as float32, or None when it has none.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.

    Returns
    -------
    numpy.ndarray or None
        float32 ``(Y, X)``.
    """
    if sample.weights is None:
        return None
    return read_image(sample.weights).astype(np.float32)


def load_sample(
    sample: Sample,
) -> tuple[np.ndarray, np.ndarray | None, set[tuple[int, int]]]:
    """Read a sample's image, labels and links, checking that image and mask sizes agree.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.

    Returns
    -------
    image : numpy.ndarray
        Raw image, native dtype and layout.
    labels : numpy.ndarray or None
        Integer labels, None when the sample has no mask.
    links : set of tuple of int
        Linked label pairs (empty without a links file).

    Raises
    ------
    CellsegError
        If a file is unreadable, the mask is not a label matrix, the sizes differ or a link
        names a label that is not in the mask.
    """
    image = load_image(sample)
    if sample.mask is None:
        return image, None, set()
    labels = load_mask(sample)
    problem = pair_problem(image.shape, labels.shape)
    if problem:
        raise CellsegError(
            f"sample {sample.name}: image {sample.image} and mask {sample.mask} do not fit: "
            f"{problem}"
        )
    return image, labels, load_links(sample, labels)


def check_shapes(dataset: Dataset) -> None:
    """Check from the file headers that every mask (and weight map) fits its image.

    Parameters
    ----------
    dataset : Dataset
        From :func:`discover`.

    Raises
    ------
    CellsegError
        Listing the samples whose sizes differ, or naming an unreadable file.
    """
    problems = []
    for sample in dataset.samples:
        if sample.mask is None:
            continue
        image = read_shape(sample.image, sample.page)
        for kind, path in (("mask", sample.mask), ("weights", sample.weights)):
            if path is not None and pair_problem(image, shape := read_shape(path, sample.page)):
                problems.append(f"{sample.name} (image {image}, {kind} {shape})")
    if problems:
        raise CellsegError(
            f"{len(problems)} sample{'s' * (len(problems) != 1)} in {dataset.root} have masks "
            f"or weights whose size differs from the image: {_listing(problems)}; each must "
            "have the image's height and width"
        )


def _label_if_binary(labels: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    values = np.unique(labels)
    if np.count_nonzero(values) != 1:
        return labels
    return ndimage.label(labels > 0)[0].astype(np.int32)


def pair_problem(
    image_shape: tuple[int, ...],
    mask_shape: tuple[int, ...],
    *,
    channel_axis: int | None = None,
    nchan: int | None = None,
) -> str | None:
    """Why a mask does not fit its image, or None when it does: the one rule for a pair.

    QC, training, the readers and the CLI all ask this function, so that a pair one of them
    accepts is accepted by all (with the same ``channel_axis`` and ``nchan``). The image is
    split into 2D frames as :func:`~napari_cellseg.io.images.iter_frames` splits it; the
    mask, ``(Y, X)`` or a stack ``(N, Y, X)``, must have as many frames of the same size.

    Parameters
    ----------
    image_shape, mask_shape : tuple of int
        Shapes from the file headers or the arrays.
    channel_axis, nchan : int, optional
        As for training (``--channel_axis``, ``--nchan``): with ``nchan=1`` a short
        ``(k, Y, X)`` image is ``k`` frames; ``None`` guesses frames or channels from the
        shape (and reads an image of the mask's own 3D shape as frames).

    Returns
    -------
    str or None
        A message naming both shapes and what to do.
    """
    image_shape, mask_shape = tuple(image_shape), tuple(mask_shape)
    if len(mask_shape) not in (2, 3):
        return f"the mask has shape {mask_shape}; a mask is (Y, X) or a stack (N, Y, X)"
    mask_frames = 1 if len(mask_shape) == 2 else mask_shape[0]
    if nchan is None and channel_axis is None and image_shape == mask_shape:
        return None
    try:
        frames, yx = frame_layout(image_shape, channel_axis, nchan)
    except CellsegError as err:
        return f"the image has shape {image_shape}, the mask {mask_shape}: {err}"
    if yx != mask_shape[-2:]:
        return (
            f"the mask has shape {mask_shape} but its image has shape {image_shape}: the mask "
            f"must have the image's height and width ({yx[0]}x{yx[1]}); pair the right files"
        )
    if frames != mask_frames:
        hint = (
            "; with one channel per frame (--nchan 1) a short stack counts as frames, so "
            "give --nchan and --channel_axis if one axis holds channels"
            if frames > 1 and nchan == 1
            else ""
        )
        return (
            f"the mask has shape {mask_shape} ({mask_frames} frame{'s' * (mask_frames != 1)}) "
            f"but its image has shape {image_shape} ({frames} frame{'s' * (frames != 1)}); "
            f"give each image frame its own mask frame{hint}"
        )
    return None


# --------------------------------------------------------------------------- helpers


def _subfolders(root: Path) -> list[Path]:
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: _natural_key(d.name),
    )


def _files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted(
        f
        for f in folder.iterdir()
        if f.suffix.lower() in extensions and not f.name.startswith(".") and f.is_file()
    )


def _by_stem(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, list[Path]] = defaultdict(list)
    for f in _files(folder, extensions):
        found[f.stem].append(f)
    clashes = [" and ".join(f.name for f in fs) for fs in found.values() if len(fs) > 1]
    if clashes:
        raise CellsegError(
            f"several files in {folder} share one name: {_listing(clashes)}; files are "
            "matched by name, so keep one of each"
        )
    return {stem: fs[0] for stem, fs in found.items()}


def _require_folders(root: Path, names: tuple[str, ...], convention: str) -> None:
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        raise CellsegError(
            f"{root} is not a {convention} dataset: it has no {' or '.join(missing)} folder "
            f"({' + '.join(n + '/' for n in names)} expected)"
        )


def _relative_name(root: Path, folder: Path, base: str) -> str:
    return base if folder == root else f"{folder.relative_to(root).as_posix()}/{base}"


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _listing(items: Iterable[str], limit: int = _LIST_LIMIT) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


def _note(warnings: list[str], files: list[Path], root: Path, template: str) -> None:
    """Append ``template`` (with ``{n}`` and ``{s}``) and a listing of ``files`` if any."""
    if files:
        head = template.format(n=len(files), s="s" * (len(files) != 1))
        warnings.append(f"{head}: {_listing(_rel(root, f) for f in files)}")


def _natural_key(name: str) -> list[int | str]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]
