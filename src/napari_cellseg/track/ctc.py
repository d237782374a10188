"""Cell Tracking Challenge track tables and their label stacks (folders: :mod:`.folders`).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
