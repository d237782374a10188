"""Link corrections on small hand-made tracking results: exact tables and pixels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.edit import break_link, children, mark_division, reassign, renumber

#: Pixels of one cell: a 2x2 block per position, positions side by side.
CELL = 2


def movie(frames: list[list[int]], dtype: type = np.int32) -> np.ndarray:
    """A stack (T, 2, 2P): frame t holds cell ``frames[t][p]`` (0: none) at position p."""
    width = max(len(row) for row in frames)
    out = np.zeros((len(frames), CELL, CELL * width), dtype)
    for t, row in enumerate(frames):
        for p, cell in enumerate(row):
            out[t, :, CELL * p : CELL * (p + 1)] = cell
    return out


def rows(*spec: tuple[int, int, int, int]) -> list[Track]:
    return [Track(*row) for row in spec]


def assert_valid(labels: np.ndarray, tracks: list[Track]) -> None:
    """CTC rules: each id present exactly on begin..end; children begin after parents end."""
    table = {t.id: t for t in tracks}
    present = {int(i) for i in np.unique(labels) if i}
    assert present == set(table)
    for row in tracks:
        frames = [t for t in range(len(labels)) if np.any(labels[t] == row.id)]
        assert frames == list(range(row.begin, row.end + 1)), row
        if row.parent:
            assert row.parent in table and table[row.parent].end < row.begin, row


def check(
    result: tuple[np.ndarray, list[Track]], frames: list[list[int]], tracks: list[Track]
) -> None:
    labels, got = result
    np.testing.assert_array_equal(labels, movie(frames))
    assert got == tracks
    assert_valid(labels, got)


# --------------------------------------------------------------------------- reassign

#: Track 1 is lost at frame 2 and found again as track 3; track 2 runs through.
LOST = [[1, 2], [1, 2], [3, 2], [3, 2]]
LOST_TRACKS = rows((1, 0, 1, 0), (2, 0, 3, 0), (3, 2, 3, 0))


def test_reassign_joins_a_new_track_to_the_track_it_continues() -> None:
    labels = movie(LOST)
    before = labels.copy()

    result = reassign(labels, LOST_TRACKS, 2, 3, 1)

    check(result, [[1, 2]] * 4, rows((1, 0, 3, 0), (2, 0, 3, 0)))
    np.testing.assert_array_equal(labels, before)  # pure: the input is unchanged


#: Tracks 1 and 2 swap positions at frame 1; track 1 then divides into 3 and 4 at frame 3.
SWAPPED = [[1, 2, 0, 0], [2, 1, 0, 0], [2, 1, 0, 0], [2, 0, 3, 4]]
SWAPPED_TRACKS = rows((1, 0, 2, 0), (2, 0, 3, 0), (3, 3, 3, 1), (4, 3, 3, 1))


def test_reassign_moves_the_continuation_and_children_and_gives_the_rest_a_new_id() -> None:
    # the cell at position 1 of frame 1 (labelled 1) continues track 2 (position 1 before)
    result = reassign(movie(SWAPPED), SWAPPED_TRACKS, 1, 1, 2)

    check(
        result,
        [[1, 2, 0, 0], [5, 2, 0, 0], [5, 2, 0, 0], [5, 0, 3, 4]],
        rows((1, 0, 0, 0), (2, 0, 2, 0), (3, 3, 3, 2), (4, 3, 3, 2), (5, 1, 3, 0)),
    )


def test_two_reassignments_undo_a_swap() -> None:
    labels, tracks = reassign(movie(SWAPPED), SWAPPED_TRACKS, 1, 1, 2)

    result = reassign(labels, tracks, 1, 5, 1)  # track 5 begins at 1: it disappears

    check(
        result,
        [[1, 2, 0, 0], [1, 2, 0, 0], [1, 2, 0, 0], [1, 0, 3, 4]],
        rows((1, 0, 3, 0), (2, 0, 2, 0), (3, 3, 3, 2), (4, 3, 3, 2)),
    )


def test_reassign_to_a_track_that_divided_there_orphans_its_other_daughter() -> None:
    frames = [[1, 0], [2, 3]]
    tracks = rows((1, 0, 0, 0), (2, 1, 1, 1), (3, 1, 1, 1))

    result = reassign(movie(frames), tracks, 1, 2, 1)

    check(result, [[1, 0], [1, 3]], rows((1, 0, 1, 0), (3, 1, 1, 0)))


@pytest.mark.parametrize(
    ("frame", "cell", "track", "expected"),
    [
        (0, 1, 2, "out of range"),
        (4, 3, 1, "out of range"),
        (2, 9, 1, "no track 9"),
        (2, 3, 9, "no track 9"),
        (2, 3, 3, "already belongs"),
        (1, 3, 1, "no cell 3 at frame 1"),
        (2, 2, 3, "begins at frame 2"),
    ],
)
def test_impossible_reassignments_are_refused(
    frame: int, cell: int, track: int, expected: str
) -> None:
    with pytest.raises(CellsegError, match=expected):
        reassign(movie(LOST), LOST_TRACKS, frame, cell, track)


def test_reassign_refuses_to_leave_a_gap() -> None:
    frames = [[1, 0], [0, 0], [0, 2]]
    with pytest.raises(CellsegError, match="without a cell in frames 1..1"):
        reassign(movie(frames), rows((1, 0, 0, 0), (2, 2, 2, 0)), 2, 2, 1)


# --------------------------------------------------------------------------- break_link


def test_break_link_gives_the_rest_of_the_track_a_new_id_and_its_children() -> None:
    frames = [[1, 2, 0, 0], [1, 2, 0, 0], [1, 2, 0, 0], [1, 0, 3, 4]]
    tracks = rows((1, 0, 3, 0), (2, 0, 2, 0), (3, 3, 3, 2), (4, 3, 3, 2))

    result = break_link(movie(frames), tracks, 2, 2)

    check(
        result,
        [[1, 2, 0, 0], [1, 2, 0, 0], [1, 5, 0, 0], [1, 0, 3, 4]],
        rows((1, 0, 3, 0), (2, 0, 1, 0), (3, 3, 3, 5), (4, 3, 3, 5), (5, 2, 2, 0)),
    )


def test_break_link_at_the_first_frame_cuts_the_link_to_the_parent() -> None:
    frames = [[1, 0], [2, 3], [2, 3]]
    tracks = rows((1, 0, 0, 0), (2, 1, 2, 1), (3, 1, 2, 1))

    result = break_link(movie(frames), tracks, 3, 1)

    check(result, [[1, 0], [2, 4], [2, 4]], rows((1, 0, 0, 0), (2, 1, 2, 1), (4, 1, 2, 0)))


@pytest.mark.parametrize(
    ("track", "frame", "expected"),
    [(1, 0, "no link to break"), (1, 2, "frame 2 is not one of them"), (7, 1, "no track 7")],
)
def test_impossible_breaks_are_refused(track: int, frame: int, expected: str) -> None:
    with pytest.raises(CellsegError, match=expected):
        break_link(movie(LOST), LOST_TRACKS, track, frame)


def test_a_new_id_that_does_not_fit_the_dtype_promotes_the_labels() -> None:
    labels = movie([[255], [255]], np.uint8)

    out, tracks = break_link(labels, rows((255, 0, 1, 0)), 255, 1)

    assert out.dtype == np.uint16
    assert tracks == rows((255, 0, 0, 0), (256, 1, 1, 0))
    assert out[1].max() == 256


# --------------------------------------------------------------------------- mark_division


def test_a_division_whose_daughter_is_the_mothers_continuation_gives_it_a_new_id() -> None:
    frames = [[1, 0], [1, 0], [1, 2], [1, 2]]
    tracks = rows((1, 0, 3, 0), (2, 2, 3, 0))

    result = mark_division(movie(frames), tracks, 1, 2, (1, 2))

    check(
        result,
        [[1, 0], [1, 0], [3, 2], [3, 2]],
        rows((1, 0, 1, 0), (2, 2, 3, 1), (3, 2, 3, 1)),
    )


def test_a_division_between_new_tracks_changes_only_the_parents() -> None:
    frames = [[1, 0, 0], [1, 0, 0], [0, 2, 3]]
    tracks = rows((1, 0, 1, 0), (2, 2, 2, 0), (3, 2, 2, 0))

    result = mark_division(movie(frames), tracks, 1, 2, (3, 2))

    check(result, frames, rows((1, 0, 1, 0), (2, 2, 2, 1), (3, 2, 2, 1)))
    assert children(result[1], 1) == [2, 3]


def test_a_mother_that_went_on_is_cut_and_its_children_follow_the_cut_part() -> None:
    frames = [[1, 0, 0, 0], [1, 2, 3, 0], [1, 2, 3, 0], [1, 2, 3, 0], [0, 0, 0, 4]]
    tracks = rows((1, 0, 3, 0), (2, 1, 3, 0), (3, 1, 3, 0), (4, 4, 4, 1))

    result = mark_division(movie(frames), tracks, 1, 1, (2, 3))

    expected = [[1, 0, 0, 0], [5, 2, 3, 0], [5, 2, 3, 0], [5, 2, 3, 0], [0, 0, 0, 4]]
    table = rows((1, 0, 0, 0), (2, 1, 3, 1), (3, 1, 3, 1), (4, 4, 4, 5), (5, 1, 3, 0))
    check(result, expected, table)


def test_a_new_division_replaces_the_mothers_other_daughters() -> None:
    frames = [[1, 0, 0, 0], [0, 2, 3, 4]]
    tracks = rows((1, 0, 0, 0), (2, 1, 1, 1), (3, 1, 1, 1), (4, 1, 1, 0))

    result = mark_division(movie(frames), tracks, 1, 1, (2, 4))

    check(result, frames, rows((1, 0, 0, 0), (2, 1, 1, 1), (3, 1, 1, 0), (4, 1, 1, 1)))


@pytest.mark.parametrize(
    ("mother", "frame", "daughters", "expected"),
    [
        (1, 0, (1, 2), "out of range"),
        (9, 2, (1, 2), "no track 9"),
        (1, 2, (2, 2), "two different daughters"),
        (1, 2, (1, 9), "no track 9"),
        (1, 3, (1, 2), "began at frame 2, before the division"),
        (2, 2, (1, 2), "must have a cell at frame 1"),
        (1, 1, (1, 2), "no cell 2 at frame 1"),
    ],
)
def test_impossible_divisions_are_refused(
    mother: int, frame: int, daughters: tuple[int, int], expected: str
) -> None:
    frames = [[1, 0], [1, 0], [1, 2], [1, 2]]
    tracks = rows((1, 0, 3, 0), (2, 2, 3, 0))
    with pytest.raises(CellsegError, match=expected):
        mark_division(movie(frames), tracks, mother, frame, daughters)


# --------------------------------------------------------------------------- renumber


def test_renumber_moves_pixels_rows_and_the_childrens_parents() -> None:
    frames = [[1, 0, 0], [0, 2, 3]]
    tracks = rows((1, 0, 0, 0), (2, 1, 1, 1), (3, 1, 1, 1))

    labels, got, mapping = renumber(movie(frames), tracks, [1, 3])

    assert mapping == {1: 4, 3: 5}
    check((labels, got), [[4, 0, 0], [0, 2, 5]], rows((2, 1, 1, 4), (4, 0, 0, 0), (5, 1, 1, 4)))
