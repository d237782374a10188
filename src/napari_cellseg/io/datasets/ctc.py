"""Cell Tracking Challenge folders: ``<seq>/tNNN.tif`` + ``<seq>_GT/SEG/man_segNNN.tif``."""

from __future__ import annotations

import re
from pathlib import Path

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets._listing import list_subfolders, listing
from napari_cellseg.io.datasets.samples import Dataset, Sample

_CTC_SEQUENCE = re.compile(r"\d+")
_CTC_FRAME = re.compile(r"t(\d+)\.tiff?", re.IGNORECASE)
_CTC_SEG = re.compile(r"man_seg(\d+)\.tiff?", re.IGNORECASE)
_CTC_SEG_SLICE = re.compile(r"man_seg_?\d+_\d+\.tiff?", re.IGNORECASE)


def ctc_sequences(root: Path) -> list[tuple[Path, Path]]:
    """(sequence folder, ground-truth folder) pairs for a CTC dataset, sequence or GT folder."""
    if root.name.endswith("_GT") and _CTC_SEQUENCE.fullmatch(root.name[:-3]):
        seq = root.with_name(root.name[:-3])
        return [(seq, root)] if _has_ctc_frames(seq) else []
    if _CTC_SEQUENCE.fullmatch(root.name) and _has_ctc_frames(root):
        return [(root, root.with_name(f"{root.name}_GT"))]
    return [
        (folder, folder.with_name(f"{folder.name}_GT"))
        for folder in list_subfolders(root)
        if _CTC_SEQUENCE.fullmatch(folder.name) and _has_ctc_frames(folder)
    ]


def _has_ctc_frames(folder: Path) -> bool:
    return folder.is_dir() and any(_CTC_FRAME.fullmatch(f.name) for f in folder.iterdir())


def discover_ctc(root: Path, require_masks: bool) -> Dataset:
    """The samples of a Cell Tracking Challenge dataset, sequence or GT folder."""
    sequences = ctc_sequences(root)
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
            f"{listing(segs[n].name for n in orphans)}"
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
