"""Link corrections on a tracking result: reassign a cell, break a link, mark a division.

A result is the CTC pair of a label stack ``(T, Y, X)`` whose ids are track ids and its
:class:`~napari_cellseg.track.ctc.Track` rows. Every function here is pure: it returns a new
``(labels, tracks)`` and leaves its arguments as they were. If the result given is CTC-valid
(each id present exactly on the frames ``begin..end`` of its row, each child beginning after
its parent ends), so is the result returned. A track that needs a new id gets the next unused
one: one more than the largest id of the labels and of the table. The labels keep their dtype
unless a new id does not fit it (then they are promoted).

Frames are 0-based. A *link* joins a track's cell at frame ``f - 1`` to the cell at frame
``f``; "the link at frame ``f``" is that one, so frame 0 has none. Edits that cannot be made
(an unknown id, a frame out of range, a cell absent from its frame, an edit that would leave
a track with a gap...) raise a :class:`~napari_cellseg.errors.CellsegError` that says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track

Result = tuple[np.ndarray, list[Track]]


def reassign(
    labels: np.ndarray, tracks: Iterable[Track], frame: int, cell_id: int, track_id: int
) -> Result:
    """The cell ``cell_id`` at ``frame``, and the rest of its track, join track ``track_id``.

    With ``A = cell_id`` and ``B = track_id`` (``B`` must exist before ``frame`` and reach
    ``frame - 1`` at least, so that the link is from its cell at ``frame - 1``):

    - the pixels of ``A`` in frames ``frame..A.end`` become ``B``; ``B`` now ends where ``A``
      ended and ``A``'s children become ``B``'s;
    - ``A`` keeps its frames before ``frame`` (if any; it then ends at ``frame - 1`` without
      children), or disappears from the table;
    - ``B``'s own cells from ``frame`` on (if ``B`` reached that far) become a new track
      without a parent, which takes ``B``'s children;
    - if ``B`` ended at ``frame - 1`` and divided there, its daughters other than ``A`` lose
      their parent (a cell cannot both continue and divide).

    Parameters
    ----------
    labels
        Label stack ``(T, Y, X)``; ids are track ids.
    tracks
        Its track rows.
    frame
        Frame of the cell, ``1..T-1``.
    cell_id
        Label of the cell at ``frame`` (its track id).
    track_id
        The track it continues.

    Returns
    -------
    labels, tracks
        The corrected stack and rows (sorted by id).

    Raises
    ------
    CellsegError
        For an unknown id, a frame out of range, a cell absent at ``frame``, ``cell_id ==
        track_id``, or a track ``B`` that begins at or after ``frame`` or ends before
        ``frame - 1``.
    """
    table = _table(tracks)
    n_frames = _stack(labels)
    _check_link_frame(frame, n_frames)
    a = _row(table, cell_id)
    b = _row(table, track_id)
    if a.id == b.id:
        raise CellsegError(f"cell {cell_id} at frame {frame} already belongs to track {track_id}")
    _check_present(labels, cell_id, frame)
    if b.begin >= frame:
        raise CellsegError(
            f"track {track_id} begins at frame {b.begin}, so the cell at frame {frame} cannot "
            "continue it; choose a track that exists before that frame"
        )
    if b.end < frame - 1:
        raise CellsegError(
            f"track {track_id} ends at frame {b.end}; joining it at frame {frame} would leave "
            f"it without a cell in frames {b.end + 1}..{frame - 1}"
        )
    new_id = _next_id(labels, table) if b.end >= frame else None
    out = _promoted(labels, new_id)
    for t in range(frame, max(a.end, b.end) + 1):
        old = labels[t]
        out[t][old == a.id] = b.id
        if new_id is not None:
            out[t][old == b.id] = new_id

    rows = {i: row for i, row in table.items() if i not in (a.id, b.id)}
    if a.begin < frame:
        rows[a.id] = Track(a.id, a.begin, frame - 1, a.parent)
    rows[b.id] = Track(b.id, b.begin, a.end, b.parent)
    if new_id is not None:
        rows[new_id] = Track(new_id, frame, b.end, 0)
    for row in table.values():
        if row.parent == a.id:
            rows[row.id] = _with_parent(row, b.id)
        elif row.parent == b.id and row.id != a.id:
            rows[row.id] = _with_parent(row, new_id or 0)
    return out, _sorted(rows)


def break_link(labels: np.ndarray, tracks: Iterable[Track], track_id: int, frame: int) -> Result:
    """Cut track ``track_id`` before ``frame``: its cells from ``frame`` on start a new track.

    The new track (the next unused id) has no parent and takes the track's children. The
    track keeps its frames before ``frame``; when ``frame`` is its first frame, what is cut is
    the link to its parent, and the whole track gets the new id (without a parent).

    Parameters
    ----------
    labels
        Label stack ``(T, Y, X)``; ids are track ids.
    tracks
        Its track rows.
    track_id
        The track.
    frame
        First frame of the new track, ``begin..end`` of the track.

    Returns
    -------
    labels, tracks
        The corrected stack and rows (sorted by id).

    Raises
    ------
    CellsegError
        For an unknown track, a frame outside the track, or its first frame when it has no
        parent (there is no link to break).
    """
    table = _table(tracks)
    n_frames = _stack(labels)
    row = _row(table, track_id)
    if not (0 <= frame < n_frames and row.begin <= frame <= row.end):
        raise CellsegError(
            f"track {track_id} spans frames {row.begin}..{row.end}; frame {frame} is not one "
            "of them"
        )
    if frame == row.begin and row.parent == 0:
        raise CellsegError(
            f"track {track_id} begins at frame {frame} without a parent: no link to break there"
        )
    new_id = _next_id(labels, table)
    out = _promoted(labels, new_id)
    for t in range(frame, row.end + 1):
        out[t][labels[t] == row.id] = new_id
    rows = {i: r for i, r in table.items() if i != row.id}
    if frame > row.begin:
        rows[row.id] = Track(row.id, row.begin, frame - 1, row.parent)
    rows[new_id] = Track(new_id, frame, row.end, 0)
    for child in table.values():
        if child.parent == row.id:
            rows[child.id] = _with_parent(child, new_id)
    return out, _sorted(rows)


def mark_division(
    labels: np.ndarray,
    tracks: Iterable[Track],
    mother_id: int,
    frame: int,
    daughters: tuple[int, int],
) -> Result:
    """Track ``mother_id`` divides at ``frame`` into the two cells ``daughters`` there.

    The mother ends at ``frame - 1`` (it must reach that frame). Each daughter is the label
    of a cell at ``frame``:

    - a track that begins at ``frame`` becomes a daughter as it is (its id and its frames
      stay; its parent becomes the mother);
    - the mother's own id (its continuation at ``frame``): the mother's cells from ``frame``
      on get a new id, and that track is the daughter.

    If the mother went on past ``frame - 1`` and is not a daughter, its cells from ``frame``
    on become a new track without a parent. Either way the mother's former children follow
    the cells they divided from (the new track). If the mother ended at ``frame - 1`` and had
    other daughters there, those lose their parent: a division has two daughters.

    Parameters
    ----------
    labels
        Label stack ``(T, Y, X)``; ids are track ids.
    tracks
        Its track rows.
    mother_id
        The dividing track.
    frame
        First frame of the daughters, ``1..T-1``.
    daughters
        Two different labels of cells at ``frame``.

    Returns
    -------
    labels, tracks
        The corrected stack and rows (sorted by id).

    Raises
    ------
    CellsegError
        For an unknown id, a frame out of range, a mother absent at ``frame - 1``, daughters
        that are equal or absent at ``frame``, or a daughter (other than the mother) whose
        track began before ``frame``.
    """
    table = _table(tracks)
    n_frames = _stack(labels)
    _check_link_frame(frame, n_frames)
    mother = _row(table, mother_id)
    if len(daughters) != 2 or daughters[0] == daughters[1]:
        raise CellsegError(f"a division needs two different daughters, not {tuple(daughters)}")
    if not mother.begin <= frame - 1 <= mother.end:
        raise CellsegError(
            f"track {mother_id} spans frames {mother.begin}..{mother.end}; to divide at frame "
            f"{frame} it must have a cell at frame {frame - 1}"
        )
    for daughter in daughters:
        row = _row(table, daughter)
        _check_present(labels, daughter, frame)
        if row.id != mother.id and row.begin < frame:
            raise CellsegError(
                f"track {daughter} began at frame {row.begin}, before the division at frame "
                f"{frame}; break its link at frame {frame} first"
            )
    new_id = _next_id(labels, table) if mother.end >= frame else None
    out = _promoted(labels, new_id)
    for t in range(frame, mother.end + 1):
        out[t][labels[t] == mother.id] = new_id

    rows = dict(table)
    rows[mother.id] = Track(mother.id, mother.begin, frame - 1, mother.parent)
    if new_id is not None:
        parent = mother.id if mother.id in daughters else 0
        rows[new_id] = Track(new_id, frame, mother.end, parent)
    for child in table.values():
        if child.parent == mother.id and child.id not in daughters:
            rows[child.id] = _with_parent(child, new_id or 0)
    for daughter in daughters:
        if daughter != mother.id:
            rows[daughter] = _with_parent(table[daughter], mother.id)
    return out, _sorted(rows)


def renumber(
    labels: np.ndarray, tracks: Iterable[Track], ids: Iterable[int]
) -> tuple[np.ndarray, list[Track], dict[int, int]]:
    """Give the tracks ``ids`` new ids (the next unused ones, in the order given).

    Their pixels, their rows and their children's parents follow; nothing else changes.
    Useful to make an edit that changed only parents visible in the pixels.

    Parameters
    ----------
    labels
        Label stack ``(T, Y, X)``; ids are track ids.
    tracks
        Its track rows.
    ids
        Tracks to renumber.

    Returns
    -------
    labels, tracks
        The renumbered stack and rows (sorted by id).
    mapping
        Old id -> new id.

    Raises
    ------
    CellsegError
        For an id not in the table.
    """
    table = _table(tracks)
    _stack(labels)
    first = _next_id(labels, table)
    mapping: dict[int, int] = {}
    for track_id in ids:
        if _row(table, track_id).id not in mapping:
            mapping[track_id] = first + len(mapping)
    out = _promoted(labels, first + len(mapping))
    for old, new in mapping.items():
        row = table[old]
        for t in range(row.begin, row.end + 1):
            out[t][labels[t] == old] = new
    rows = [
        Track(mapping.get(r.id, r.id), r.begin, r.end, mapping.get(r.parent, r.parent))
        for r in table.values()
    ]
    return out, sorted(rows), mapping


def children(tracks: Iterable[Track], track_id: int) -> list[int]:
    """Ids of the tracks whose parent is ``track_id``, in increasing order."""
    return sorted(row.id for row in tracks if row.parent == track_id)


# --------------------------------------------------------------------------- helpers


def _table(tracks: Iterable[Track]) -> dict[int, Track]:
    table: dict[int, Track] = {}
    for row in tracks:
        if row.id in table:
            raise CellsegError(f"track {row.id} appears twice in the track table")
        table[row.id] = row
    return table


def _stack(labels: np.ndarray) -> int:
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise CellsegError(
            f"tracking labels must be an integer stack (T, Y, X), not {labels.dtype} of shape "
            f"{labels.shape}"
        )
    return int(labels.shape[0])


def _row(table: Mapping[int, Track], track_id: int) -> Track:
    row = table.get(int(track_id))
    if row is None or track_id <= 0:
        raise CellsegError(f"there is no track {track_id} in the track table")
    return row


def _check_link_frame(frame: int, n_frames: int) -> None:
    if not 1 <= frame < n_frames:
        raise CellsegError(
            f"frame {frame} is out of range: a link joins frame f-1 to frame f, f in "
            f"1..{n_frames - 1}"
        )


def _check_present(labels: np.ndarray, cell_id: int, frame: int) -> None:
    if not np.any(labels[frame] == cell_id):
        raise CellsegError(f"there is no cell {cell_id} at frame {frame}")


def _next_id(labels: np.ndarray, table: Mapping[int, Track]) -> int:
    return max(int(labels.max(initial=0)), max(table, default=0)) + 1


def _promoted(labels: np.ndarray, largest: int | None) -> np.ndarray:
    dtype = labels.dtype
    if largest is not None and largest > np.iinfo(dtype).max:
        dtype = np.promote_types(dtype, np.min_scalar_type(largest))
    return labels.astype(dtype, copy=True)


def _with_parent(row: Track, parent: int) -> Track:
    return Track(row.id, row.begin, row.end, parent)


def _sorted(rows: Mapping[int, Track]) -> list[Track]:
    return [rows[i] for i in sorted(rows)]
