"""Cell Tracking Challenge files: track tables, mask folders and sequences.

The layout (Cell Tracking Challenge, https://celltrackingchallenge.net):

- a sequence folder ``01/tNNN.tif`` holds the images, one 2D frame a file;
- its ground truth ``01_GT/TRA/man_trackNNN.tif`` (label frames whose ids are track ids) with
  ``01_GT/TRA/man_track.txt``, and sparse segmentations ``01_GT/SEG/man_segNNN.tif``;
- a result ``01_RES/maskNNN.tif`` with ``01_RES/res_track.txt``.

A track table has one row ``id begin end parent`` a track (frames 0-based and inclusive,
parent 0 for none). A track id is present in every frame from ``begin`` to ``end`` and in no
other frame (a track has no gaps), and a child begins after its parent's last frame. Frame
numbers have 3 digits, or 4 for sequences of more than 1000 frames.

Nothing here imports napari, Qt or torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError


@dataclass(frozen=True, order=True)
class Track:
    """One row of a CTC track table (``man_track.txt`` / ``res_track.txt``).

    Attributes
    ----------
    id
        The label the track's cell carries in every frame from ``begin`` to ``end``.
    begin, end
        First and last frame (0-based, inclusive).
    parent
        The track it divided from, 0 for none.
    """

    id: int
    begin: int
    end: int
    parent: int = 0


#: The name of the track table of a ground truth (``01_GT/TRA``) and of a result folder.
GT_TABLE = "man_track.txt"
RES_TABLE = "res_track.txt"

_IMAGE_FILE = re.compile(r"t(\d+)\.tiff?", re.IGNORECASE)
_GT_FILE = re.compile(r"man_track(\d+)\.tiff?", re.IGNORECASE)
_RES_FILE = re.compile(r"mask(\d+)\.tiff?", re.IGNORECASE)
_SEG_FILE = re.compile(r"man_seg(\d+)\.tiff?", re.IGNORECASE)
_SEQUENCE = re.compile(r"\d+")
_LARGEST_CTC_ID = int(np.iinfo(np.uint16).max)
#: Problems listed in one error before "... and N more".
_LISTED = 3
#: Largest id counted with :func:`numpy.bincount` (a table of this many counters).
_BINCOUNT_LIMIT = 1 << 22


# --------------------------------------------------------------------------------------------
# track tables


def _table_problems(tracks: Sequence[Track]) -> list[tuple[int, str]]:
    """``(row index, message)`` for every row of a table that is wrong on its own or as a row
    of the table (duplicate id, unknown parent)."""
    problems: list[tuple[int, str]] = []
    first_row: dict[int, int] = {}
    for index, track in enumerate(tracks):
        values = (track.id, track.begin, track.end, track.parent)
        if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in values):
            problems.append((index, f"values {values} must be integers"))
        elif min(values) < 0:
            problems.append((index, f"negative value in 'id begin end parent' = {values}"))
        elif track.id == 0:
            problems.append((index, "track id 0 is the background; ids start at 1"))
        elif track.begin > track.end:
            problems.append(
                (index, f"track {track.id} begins at frame {track.begin} after its end {track.end}")
            )
        elif track.parent == track.id:
            problems.append((index, f"track {track.id} is its own parent"))
        elif track.id in first_row:
            problems.append(
                (index, f"track id {track.id} is repeated (first in row {first_row[track.id] + 1})")
            )
        first_row.setdefault(track.id, index)
    for index, track in enumerate(tracks):
        if track.parent and track.parent not in first_row:
            problems.append(
                (index, f"the parent {track.parent} of track {track.id} is not in the table")
            )
    return sorted(problems)


def read_tracks(path: str | os.PathLike) -> list[Track]:
    """Read a CTC track table (``man_track.txt`` or ``res_track.txt``).

    Parameters
    ----------
    path : str or os.PathLike
        A text file of rows ``id begin end parent`` separated by spaces or tabs; blank lines
        are skipped.

    Returns
    -------
    list of Track
        The rows in file order.

    Raises
    ------
    CellsegError
        If the file is missing or unreadable, or a line is malformed (not 4 integers, a
        negative value, ``begin > end``, a repeated id, a parent not in the table); the
        message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise CellsegError(
            f"{path}: no such track table; a CTC ground truth holds TRA/{GT_TABLE} and a "
            f"result folder {RES_TABLE}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CellsegError(f"cannot read the track table {path}: {exc}") from exc
    tracks: list[Track] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        where = f"{path}, line {number}"
        if len(words) != 4:
            raise CellsegError(
                f"{where}: expected 4 numbers 'id begin end parent', got {line.strip()!r}; "
                "fix or remove the line"
            )
        try:
            values = [int(word) for word in words]
        except ValueError:
            raise CellsegError(
                f"{where}: {line.strip()!r} is not 4 integers 'id begin end parent'; "
                "fix or remove the line"
            ) from None
        tracks.append(Track(*values))
        lines.append(number)
    problems = _table_problems(tracks)
    if problems:
        index, message = problems[0]
        raise CellsegError(f"{path}, line {lines[index]}: {message}; fix the track table")
    return tracks


def write_tracks(path: str | os.PathLike, tracks: Iterable[Track]) -> Path:
    """Write a CTC track table atomically, one ``id begin end parent`` row a track by id.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (``res_track.txt``); its folder must exist. An existing file is replaced.
    tracks : iterable of Track
        The rows.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    CellsegError
        If the rows are not a valid table (nothing is written then) or the file cannot be
        written.
    """
    from napari_cellseg.io.outputs import atomic_path

    path = Path(path)
    tracks = sorted(tracks)
    problems = _table_problems(tracks)
    if problems:
        raise CellsegError(f"cannot write {path}: {problems[0][1]}. Nothing was written")
    text = "".join(f"{t.id} {t.begin} {t.end} {t.parent}\n" for t in tracks)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# label stacks and tables


def _as_stack(labels: np.ndarray, source: str) -> np.ndarray:
    """``labels`` as an integer ``(T, Y, X)`` stack (not copied when it is one), or a
    CellsegError naming ``source``."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        hint = "; a single 2D frame is one time point: pass labels[None]" * (labels.ndim == 2)
        raise CellsegError(
            f"{source}: tracking needs a stack of label frames (T, Y, X), got shape "
            f"{labels.shape}{hint}"
        )
    if labels.shape[0] == 0:
        raise CellsegError(f"{source}: the label stack has no frames")
    if labels.dtype == bool:
        return labels.astype(np.int32)
    if labels.dtype.kind not in "iu":
        raise CellsegError(
            f"{source}: labels must be integers (0 = background, one id a track), not "
            f"{labels.dtype}"
        )
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise CellsegError(f"{source}: labels must be >= 0 (0 = background), found {labels.min()}")
    return labels


def _frame_ids(frame: np.ndarray) -> np.ndarray:
    """The sorted non-zero ids of one label frame (non-negative integers)."""
    flat = np.asarray(frame).ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    high = int(flat.max())
    if high < _BINCOUNT_LIMIT:
        ids = np.flatnonzero(np.bincount(flat.astype(np.intp, copy=False), minlength=1))
    else:
        ids = np.unique(flat)
    return ids[ids != 0].astype(np.int64)


def _ids_per_frame(labels: np.ndarray) -> list[np.ndarray]:
    return [_frame_ids(frame) for frame in labels]


def _spans(ids_per_frame: Sequence[np.ndarray]) -> dict[int, list[int]]:
    """``id -> [first frame, last frame, number of frames]`` over a sequence of frames."""
    spans: dict[int, list[int]] = {}
    for t, ids in enumerate(ids_per_frame):
        for i in ids.tolist():
            span = spans.get(i)
            if span is None:
                spans[i] = [t, t, 1]
            else:
                span[1] = t
                span[2] += 1
    return spans


def _frame_name(t: int, frame_files: Sequence[Path] | None) -> str:
    if frame_files is not None and t < len(frame_files):
        return f"frame {t} ({Path(frame_files[t]).name})"
    return f"frame {t}"


def tracks_from_labels(labels: np.ndarray, parents: Mapping[int, int] | None = None) -> list[Track]:
    """The CTC track table of a label stack whose ids are track ids.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels ``(T, Y, X)``, 0 = background; an id is one track.
    parents : mapping of int to int, optional
        ``{child id: parent id}`` for the tracks that divided from another (0 = none).

    Returns
    -------
    list of Track
        One row per id, sorted by id: ``begin`` and ``end`` are the first and last frames the
        id occupies.

    Raises
    ------
    CellsegError
        If ``labels`` is not an integer stack, an id is missing from a frame between its first
        and last (a CTC track has no gaps), or ``parents`` names an id absent from the labels
        or a parent that does not end before its child begins.
    """
    labels = _as_stack(labels, "labels")
    spans = _spans(_ids_per_frame(labels))
    ids_per_frame = None
    for i, (first, last, count) in sorted(spans.items()):
        if count != last - first + 1:
            if ids_per_frame is None:
                ids_per_frame = _ids_per_frame(labels)
            missing = next(t for t in range(first, last + 1) if i not in ids_per_frame[t])
            raise CellsegError(
                f"labels are not consistent over time: id {i} is missing from frame {missing} "
                f"(present in frames {first}..{last}); a CTC track can not have gaps: give the "
                "cell a new id after the gap, with the old id as its parent"
            )
    parents = dict(parents or {})
    for child, parent in sorted(parents.items()):
        if child not in spans:
            raise CellsegError(f"parents: the child id {child} is not in the labels")
        if parent and parent not in spans:
            raise CellsegError(
                f"parents: the parent id {parent} of track {child} does not exist in the labels"
            )
        if parent and spans[parent][1] >= spans[child][0]:
            raise CellsegError(
                f"parents: track {child} begins at frame {spans[child][0]} but its parent "
                f"{parent} lasts until frame {spans[parent][1]}; a child begins after its "
                "parent's last frame"
            )
    return [
        Track(i, first, last, int(parents.get(i, 0)))
        for i, (first, last, _) in sorted(spans.items())
    ]


def _track_problems(
    ids_per_frame: Sequence[np.ndarray],
    tracks: Sequence[Track],
    frame_files: Sequence[Path] | None = None,
) -> list[str]:
    """Every disagreement between the ids of each frame and a track table."""
    problems = [message for _, message in _table_problems(tracks)]
    if problems:
        return problems
    n_frames = len(ids_per_frame)
    by_id = {t.id: t for t in tracks}
    for track in tracks:
        if track.end >= n_frames:
            problems.append(
                f"track {track.id} ends at frame {track.end} but there are only {n_frames} "
                f"frames (0..{n_frames - 1})"
            )
        if track.parent and by_id[track.parent].end >= track.begin:
            problems.append(
                f"track {track.id} begins at frame {track.begin} but its parent {track.parent} "
                f"lasts until frame {by_id[track.parent].end}; a child begins after its "
                "parent's last frame"
            )
    expected: list[set[int]] = [set() for _ in range(n_frames)]
    for track in tracks:
        for t in range(track.begin, min(track.end, n_frames - 1) + 1):
            expected[t].add(track.id)
    for t, ids in enumerate(ids_per_frame):
        present = set(ids.tolist())
        where = _frame_name(t, frame_files)
        for i in sorted(present - expected[t]):
            if i in by_id:
                span = f"its track runs over frames {by_id[i].begin}..{by_id[i].end}"
            else:
                span = "it is not in the track table"
            problems.append(f"{where}: id {i} is in the labels but {span}")
        for i in sorted(expected[t] - present):
            track = by_id[i]
            problems.append(
                f"{where}: track {i} (frames {track.begin}..{track.end}) is missing from the labels"
            )
    return problems


def _problems_message(source: str, problems: list[str]) -> str:
    shown = "; ".join(problems[:_LISTED])
    more = len(problems) - _LISTED
    return f"{source}: {shown}" + (f"; and {more} more problems" if more > 0 else "")


def check_tracks(
    labels: np.ndarray,
    tracks: Sequence[Track],
    source: str,
    *,
    frame_files: Sequence[Path] | None = None,
) -> None:
    """Check that a track table describes a label stack.

    Every track id must be present in exactly the frames ``begin..end``, every id of the
    labels must be a track, parents must exist and end before their children begin.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels ``(T, Y, X)``.
    tracks : sequence of Track
        The table.
    source : str
        What the two come from (a folder, a layer), for the messages.
    frame_files : sequence of pathlib.Path, optional
        The file of each frame, named in the messages.

    Raises
    ------
    CellsegError
        Naming ``source``, the frames and ids concerned (the first problems, and how many more).
    """
    labels = _as_stack(labels, source)
    problems = _track_problems(_ids_per_frame(labels), list(tracks), frame_files)
    if problems:
        raise CellsegError(_problems_message(source, problems))


def relabel_consecutive(
    labels: np.ndarray, tracks: Sequence[Track]
) -> tuple[np.ndarray, list[Track]]:
    """Renumber the tracks ``1..N`` in the order of their ids (labels and table together).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels ``(T, Y, X)`` described by ``tracks``.
    tracks : sequence of Track
        Their table.

    Returns
    -------
    labels : numpy.ndarray
        The renumbered labels (``int32``).
    tracks : list of Track
        The renumbered table, sorted by id; parents follow their tracks.
    """
    tracks = sorted(tracks)
    lut_size = max([t.id for t in tracks], default=0) + 1
    lut = np.zeros(max(lut_size, int(np.max(labels, initial=0)) + 1), dtype=np.int32)
    new_id = {t.id: k for k, t in enumerate(tracks, start=1)}
    for old, new in new_id.items():
        lut[old] = new
    relabelled = [
        Track(new_id[t.id], t.begin, t.end, new_id.get(t.parent, 0) if t.parent else 0)
        for t in tracks
    ]
    return lut[np.asarray(labels)], relabelled


# --------------------------------------------------------------------------------------------
# folders


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
    from napari_cellseg.io.images import write_mask
    from napari_cellseg.io.outputs import refuse_existing, remove_stale_temporaries

    folder = Path(folder)
    labels = _as_stack(labels, f"result for {folder}")
    tracks = sorted(tracks)
    check_tracks(labels, tracks, f"result for {folder}")
    high = int(labels.max())
    if high > _LARGEST_CTC_ID:
        raise CellsegError(
            f"result for {folder}: track id {high} does not fit the 16-bit CTC masks (at most "
            f"{_LARGEST_CTC_ID}); renumber the tracks with relabel_consecutive"
        )
    if folder.exists() and not folder.is_dir():
        raise CellsegError(f"{folder} is a file; give a folder for the result")
    digits = frame_digits(len(labels))
    masks = [folder / f"mask{t:0{digits}d}.tif" for t in range(len(labels))]
    table = folder / RES_TABLE
    if folder.is_dir():
        names = {p.name for p in masks}
        others = sorted(
            p.name for p in folder.iterdir() if _RES_FILE.fullmatch(p.name) and p.name not in names
        )
        if others:
            shown = ", ".join(others[:_LISTED]) + f" and {len(others) - _LISTED} more" * (
                len(others) > _LISTED
            )
            raise CellsegError(
                f"{folder} holds mask files of another result ({shown}) that this result of "
                f"{len(labels)} frames would not replace; choose an empty folder or remove "
                "them. Nothing was written"
            )
    refuse_existing(
        [*masks, table],
        overwrite=overwrite,
        what="result file",
        fix="pass overwrite=True (--overwrite) to replace them, or choose another folder",
    )
    if not folder.parent.is_dir():
        raise CellsegError(f"cannot write {folder}: the folder {folder.parent} does not exist")
    folder.mkdir(exist_ok=True)
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
