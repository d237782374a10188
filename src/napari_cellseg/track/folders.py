"""Cell Tracking Challenge folders: sequences, ground truths, results and frame stacks.

A sequence folder ``01/tNNN.tif`` holds the images; its ground truth
``01_GT/TRA/man_trackNNN.tif`` + ``man_track.txt`` (and sparse ``01_GT/SEG/man_segNNN.tif``);
a result ``01_RES/maskNNN.tif`` + ``res_track.txt``. Frame numbers have 3 digits, or 4 for
sequences of more than 1000 frames. The track tables themselves are :mod:`.ctc`'s.

Nothing here imports napari, Qt or torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import (
    _LARGEST_CTC_ID,
    _LISTED,
    GT_TABLE,
    RES_TABLE,
    Track,
    _as_stack,
    check_tracks,
    read_tracks,
    write_tracks,
)

_IMAGE_FILE = re.compile(r"t(\d+)\.tiff?", re.IGNORECASE)
_GT_FILE = re.compile(r"man_track(\d+)\.tiff?", re.IGNORECASE)
_RES_FILE = re.compile(r"mask(\d+)\.tiff?", re.IGNORECASE)
_SEG_FILE = re.compile(r"man_seg(\d+)\.tiff?", re.IGNORECASE)
_SEQUENCE = re.compile(r"\d+")


@dataclass
class CTCSequence:
    """A CTC sequence, ground truth or result, as arrays.

    Attributes
    ----------
    images
        The frames ``(T, Y, X[, C])`` in their dtype, or None (not asked for, or not found).
    labels
        The track labels ``(T, Y, X)`` (``int32``), or None without ground truth.
    tracks
        The track table, or None without ground truth.
    image_files
        The image file of each frame (empty without images).
    name
        The sequence name (``"01"``).
    label_files
        The label file of each frame (empty without labels).
    """

    images: np.ndarray | None
    labels: np.ndarray | None
    tracks: list[Track] | None
    image_files: list[Path]
    name: str
    label_files: list[Path] = field(default_factory=list)


def _numbered(folder: Path, pattern: re.Pattern[str], what: str) -> list[Path]:
    """The files of ``folder`` that ``pattern`` numbers, in frame order; numbers must run
    0..N-1 without gaps or repeats."""
    found: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        match = pattern.fullmatch(entry.name)
        if not match or not entry.is_file():
            continue
        number = int(match.group(1))
        if number in found:
            raise CellsegError(
                f"{folder}: {found[number].name} and {entry.name} are both frame {number}; "
                "keep one of them"
            )
        found[number] = entry
    if not found:
        raise CellsegError(f"{folder}: no {what} files")
    missing = sorted(set(range(max(found) + 1)) - found.keys())
    if missing:
        shown = ", ".join(str(n) for n in missing[:_LISTED])
        more = f" and {len(missing) - _LISTED} more" * (len(missing) > _LISTED)
        raise CellsegError(
            f"{folder}: {what} frame {shown}{more} is missing ({len(found)} files, numbered up "
            f"to {max(found)}); CTC frames are numbered 0..N-1 without gaps"
        )
    return [found[n] for n in sorted(found)]


def _check_frame(data: np.ndarray, path: Path, *, image: bool) -> None:
    colour = image and data.ndim == 3 and data.shape[-1] <= 4
    if data.ndim != 2 and not colour:
        raise CellsegError(
            f"{path} holds an array of shape {data.shape}; a CTC frame file holds one 2D "
            f"{'image' if image else 'label frame'} (Y, X)"
        )


def _read_stack(files: Sequence[Path], *, image: bool) -> np.ndarray:
    """The frames of ``files`` stacked; they must all have the first one's shape and dtype."""
    from napari_cellseg.io.images import read_image, read_mask

    read = read_image if image else read_mask
    first = read(files[0])
    _check_frame(first, files[0], image=image)
    stack = np.empty((len(files), *first.shape), dtype=first.dtype)
    stack[0] = first
    for t, path in enumerate(files[1:], start=1):
        frame = read(path)
        _check_frame(frame, path, image=image)
        if frame.shape != first.shape:
            raise CellsegError(
                f"{path} has shape {frame.shape} but {files[0].name} has {first.shape}; every "
                "frame of a sequence must have the same size"
            )
        if frame.dtype != first.dtype:
            if image or not np.can_cast(frame.dtype, stack.dtype):
                raise CellsegError(
                    f"{path} holds {frame.dtype} but {files[0].name} holds {first.dtype}; "
                    "every frame of a sequence must have the same type"
                )
        stack[t] = frame
    return stack


def _labels_and_tracks(
    folder: Path, pattern: re.Pattern[str], table: str, what: str
) -> tuple[np.ndarray, list[Track], list[Path]]:
    files = _numbered(folder, pattern, what)
    tracks = read_tracks(folder / table)
    labels = _read_stack(files, image=False)
    check_tracks(labels, tracks, f"{folder} ({table} and {what} files)", frame_files=files)
    return labels, tracks, files


def _has(folder: Path, pattern: re.Pattern[str], name: str | None = None) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(
                pattern.fullmatch(e.name) or (name is not None and e.name == name) for e in entries
            )
    except OSError:
        return False


def _kind(path: Path) -> str | None:
    """``"sequence"``, ``"tra"``, ``"gt"``, ``"result"`` or None for a folder."""
    if not path.is_dir():
        return None
    if _has(path, _RES_FILE, RES_TABLE):
        return "result"
    if _has(path, _GT_FILE, GT_TABLE):
        return "tra"
    if _has(path, _IMAGE_FILE):
        return "sequence"
    if path.name.endswith("_GT") and _has(path / "TRA", _GT_FILE, GT_TABLE):
        return "gt"
    return None


def is_ctc_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a CTC folder :func:`read_sequence` reads (a cheap check on
    file names: nothing is opened).

    Parameters
    ----------
    path : str or os.PathLike
        A candidate folder.

    Returns
    -------
    bool
        True for a sequence folder (``tNNN.tif``), a ground-truth ``NN_GT`` or ``NN_GT/TRA``
        folder (``man_trackNNN.tif`` / ``man_track.txt``) or a result folder
        (``maskNNN.tif`` / ``res_track.txt``).
    """
    return _kind(Path(path)) is not None


def _gt_tra(gt: Path) -> Path:
    """The ``TRA`` folder of a ground truth given as ``01_GT`` or ``01_GT/TRA``."""
    if (gt / GT_TABLE).is_file() or _has(gt, _GT_FILE):
        return gt
    if (gt / "TRA").is_dir():
        return gt / "TRA"
    raise CellsegError(
        f"{gt}: no tracking ground truth; expected {gt}/TRA/man_trackNNN.tif and "
        f"{gt}/TRA/{GT_TABLE} (or a TRA folder itself)"
    )


def _sequence_name(folder: Path) -> str:
    for suffix in ("_GT", "_RES"):
        if folder.name.endswith(suffix) and _SEQUENCE.fullmatch(folder.name[: -len(suffix)]):
            return folder.name[: -len(suffix)]
    return folder.name


def read_sequence(
    path: str | os.PathLike, gt: str | os.PathLike | None = None, *, images: bool = True
) -> CTCSequence:
    """Read a CTC sequence with its ground truth, a ground truth, or a result.

    Parameters
    ----------
    path : str or os.PathLike
        One of: a sequence folder (``01/tNNN.tif``), whose ground truth is ``gt`` or else the
        sibling ``01_GT/TRA`` when it exists; a ground truth ``01_GT`` or ``01_GT/TRA``
        (``man_trackNNN.tif`` + ``man_track.txt``), with the images of the sibling ``01``; a
        result folder (``maskNNN.tif`` + ``res_track.txt``), with the images of ``01`` when the
        folder is ``01_RES``.
    gt : str or os.PathLike, optional
        The ground truth of a sequence folder (``01_GT`` or its ``TRA`` folder).
    images : bool
        Read the images; False leaves ``images`` None (``image_files`` still lists them).

    Returns
    -------
    CTCSequence
        Frames in the order of their numbers. ``labels`` and ``tracks`` are None for a
        sequence without ground truth.

    Raises
    ------
    CellsegError
        If ``path`` is no such folder, frames are missing, repeated or differ in shape, the
        track table is malformed or disagrees with the labels, or images and labels differ in
        number or size; messages name the folder and frame file.
    """
    path = Path(path)
    kind = _kind(path)
    if kind is None:
        raise CellsegError(
            f"{path} is not a Cell Tracking Challenge folder"
            f"{' (no such folder)' if not path.is_dir() else ''}: expected a sequence folder "
            "01/ with tNNN.tif frames, a ground truth 01_GT/TRA with man_trackNNN.tif and "
            f"{GT_TABLE}, or a result folder with maskNNN.tif and {RES_TABLE}"
        )
    if gt is not None and kind != "sequence":
        raise CellsegError(
            f"{path} is a {'result' if kind == 'result' else 'ground-truth'} folder; gt= is "
            "only for a sequence folder (01/ with tNNN.tif frames)"
        )
    labels = tracks = None
    label_files: list[Path] = []
    if kind == "sequence":
        seq = path
        gt_path = Path(gt) if gt is not None else path.with_name(f"{path.name}_GT")
        if gt is not None and not gt_path.is_dir():
            raise CellsegError(f"ground truth {gt_path}: no such folder")
        if gt is not None or (gt_path / "TRA").is_dir():
            tra = _gt_tra(gt_path)
            labels, tracks, label_files = _labels_and_tracks(
                tra, _GT_FILE, GT_TABLE, "man_trackNNN.tif"
            )
    else:
        if kind == "result":
            folder, pattern, table, what = path, _RES_FILE, RES_TABLE, "maskNNN.tif"
            seq = path.with_name(_sequence_name(path))
        else:
            folder = path / "TRA" if kind == "gt" else path
            pattern, table, what = _GT_FILE, GT_TABLE, "man_trackNNN.tif"
            gt_folder = folder.parent if kind == "tra" else path
            seq = gt_folder.with_name(_sequence_name(gt_folder))
        labels, tracks, label_files = _labels_and_tracks(folder, pattern, table, what)
        if seq == path or not _has(seq, _IMAGE_FILE):
            seq = None
    image_files = _numbered(seq, _IMAGE_FILE, "tNNN.tif") if seq is not None else []
    stack = _read_stack(image_files, image=True) if images and image_files else None
    if labels is not None and image_files:
        if len(image_files) != len(labels):
            raise CellsegError(
                f"{seq} has {len(image_files)} frames but its labels in {label_files[0].parent} "
                f"have {len(labels)}; a ground truth or result has one label file per frame"
            )
        if stack is not None and stack.shape[1:3] != labels.shape[1:]:
            raise CellsegError(
                f"{image_files[0]} has shape {stack.shape[1:]} but {label_files[0]} has "
                f"{labels.shape[1:]}; images and labels must have the same size"
            )
    name = _sequence_name(seq) if seq is not None else _sequence_name(path)
    return CTCSequence(stack, labels, tracks, image_files, name, label_files)


def frame_digits(n_frames: int) -> int:
    """Digits of CTC frame numbers: 3, or 4 for sequences of more than 1000 frames.

    Parameters
    ----------
    n_frames : int
        Number of frames.

    Returns
    -------
    int
        3 or 4.
    """
    return 3 if n_frames <= 1000 else 4


def write_result(
    folder: str | os.PathLike,
    labels: np.ndarray,
    tracks: Sequence[Track],
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write a tracking result as a CTC result folder: ``maskNNN.tif`` + ``res_track.txt``.

    Parameters
    ----------
    folder : str or os.PathLike
        The result folder (``01_RES``); created if missing (its parent must exist).
    labels : numpy.ndarray
        Integer labels ``(T, Y, X)``, ids 1..65535 (CTC masks are 16-bit).
    tracks : sequence of Track
        Their track table; checked with :func:`check_tracks` first.
    overwrite : bool
        Replace existing result files.

    Returns
    -------
    list of pathlib.Path
        The mask files in frame order, then the track table.

    Raises
    ------
    CellsegError
        If labels and table disagree, an id does not fit 16 bits, files exist (without
        ``overwrite``) or the folder holds mask files of another result. Nothing is written
        then.
    """
    folder = Path(folder)
    if not folder.parent.is_dir():
        raise CellsegError(f"cannot write {folder}: the folder {folder.parent} does not exist")
    return _write_labels(folder, labels, tracks, "mask", _RES_FILE, RES_TABLE, overwrite)


def write_sequence(
    root: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    tracks: Sequence[Track],
    *,
    name: str = "01",
) -> Path:
    """Write a labelled time-lapse as a CTC sequence with its ground truth.

    ``root/<name>/tNNN.tif`` (the images, in their dtype) and ``root/<name>_GT/TRA``
    (``man_trackNNN.tif`` + ``man_track.txt``), which :func:`read_sequence` reads back.

    Returns
    -------
    pathlib.Path
        The sequence folder ``root/<name>``.

    Raises
    ------
    CellsegError
        As :func:`write_result` for the labels and table; for images that are not one frame
        per label frame; for existing files. Nothing is written then.
    """
    from napari_cellseg.io.images import write_image
    from napari_cellseg.io.outputs import refuse_existing

    root = Path(root)
    seq, tra = root / name, root / f"{name}_GT" / "TRA"
    labels = _as_stack(labels, f"ground truth for {seq}")
    if len(images) != len(labels) or any(np.shape(i)[:2] != labels.shape[1:] for i in images):
        raise CellsegError(
            f"{seq}: {len(images)} images for {len(labels)} label frames of "
            f"{labels.shape[1:]}; each label frame needs its image of the same size"
        )
    digits = frame_digits(len(labels))
    files = [seq / f"t{t:0{digits}d}.tif" for t in range(len(images))]
    refuse_existing(files, overwrite=False, what="image file")
    _write_labels(tra, labels, tracks, "man_track", _GT_FILE, GT_TABLE, False)
    seq.mkdir(parents=True, exist_ok=True)
    for path, image in zip(files, images):
        write_image(path, np.asarray(image))
    return seq


def _write_labels(
    folder: Path,
    labels: np.ndarray,
    tracks: Sequence[Track],
    prefix: str,
    pattern: re.Pattern[str],
    table_name: str,
    overwrite: bool,
) -> list[Path]:
    """``<prefix>NNN.tif`` label frames + the track table into ``folder``, after every check
    (the table against the labels, 16-bit ids, no other frames of that kind left in the
    folder, no file replaced without ``overwrite``)."""
    from napari_cellseg.io.images import write_mask
    from napari_cellseg.io.outputs import refuse_existing, remove_stale_temporaries

    what = "result" if prefix == "mask" else "ground truth"
    labels = _as_stack(labels, f"{what} for {folder}")
    tracks = sorted(tracks)
    check_tracks(labels, tracks, f"{what} for {folder}")
    high = int(labels.max())
    if high > _LARGEST_CTC_ID:
        raise CellsegError(
            f"{what} for {folder}: track id {high} does not fit the 16-bit CTC masks (at most "
            f"{_LARGEST_CTC_ID}); renumber the tracks with relabel_consecutive"
        )
    if folder.exists() and not folder.is_dir():
        raise CellsegError(f"{folder} is a file; give a folder for the {what}")
    digits = frame_digits(len(labels))
    masks = [folder / f"{prefix}{t:0{digits}d}.tif" for t in range(len(labels))]
    table = folder / table_name
    if folder.is_dir():
        names = {p.name for p in masks}
        others = sorted(
            p.name for p in folder.iterdir() if pattern.fullmatch(p.name) and p.name not in names
        )
        if others:
            shown = ", ".join(others[:_LISTED]) + f" and {len(others) - _LISTED} more" * (
                len(others) > _LISTED
            )
            raise CellsegError(
                f"{folder} holds mask files of another {what} ({shown}) that this {what} of "
                f"{len(labels)} frames would not replace; choose an empty folder or remove "
                "them. Nothing was written"
            )
    refuse_existing(
        [*masks, table],
        overwrite=overwrite,
        what=f"{what} file",
        fix="pass overwrite=True (--overwrite) to replace them, or choose another folder",
    )
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries([*masks, table])
    for path, frame in zip(masks, labels):
        write_mask(path, frame.astype(np.uint16))
    write_tracks(table, tracks)
    return [*masks, table]


#: Image files :func:`read_frames` takes from a folder that is not CTC-named.
_FRAME_SUFFIXES = (".tif", ".tiff", ".png")


def read_frames(path: str | os.PathLike, *, labels: bool) -> tuple[np.ndarray, list[Path]]:
    """A time-lapse from a multi-frame TIFF ``(T, Y, X)`` or a folder of frame files.

    A folder's frames are CTC-named (``tNNN``, ``maskNNN``, ``man_trackNNN``) or any image files
    ordered by the last number in their names (``pos1_frame_2.tif`` before ``..._10.tif``).

    Parameters
    ----------
    path
        The stack file or the folder.
    labels
        Read label frames (integers, as masks are read) instead of images.

    Raises
    ------
    CellsegError
        For a 2D file, an empty folder, two files with one number, or frames that differ in
        shape, naming the file.
    """
    from napari_cellseg.io.images import read_image, read_mask

    path = Path(path)
    if path.is_file():
        stack = (read_mask if labels else read_image)(path)
        if stack.ndim < 3 or (not labels and stack.ndim == 3 and stack.shape[-1] <= 4):
            raise CellsegError(
                f"{path} holds one frame of shape {stack.shape}; tracking needs a time-lapse: "
                "a multi-frame TIFF (T, Y, X) or a folder of frames"
            )
        return stack, [path]
    if not path.is_dir():
        raise CellsegError(f"{path} does not exist")
    for pattern in (_RES_FILE, _GT_FILE) if labels else (_IMAGE_FILE,):
        if _has(path, pattern):
            files = _numbered(path, pattern, "frame")
            return _read_stack(files, image=not labels), files
    files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _FRAME_SUFFIXES]
    if not files:
        raise CellsegError(f"{path}: no frame files ({', '.join(_FRAME_SUFFIXES)})")
    numbered: dict[int, Path] = {}
    for p in files:
        digits = re.findall(r"\d+", p.stem)
        if not digits:
            raise CellsegError(f"{path}: {p.name} has no frame number in its name")
        number = int(digits[-1])
        if number in numbered:
            raise CellsegError(
                f"{path}: {numbered[number].name} and {p.name} both end in frame number "
                f"{number}; put one time-lapse per folder"
            )
        numbered[number] = p
    ordered = [numbered[k] for k in sorted(numbered)]
    return _read_stack(ordered, image=not labels), ordered
