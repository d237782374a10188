"""LapTrack linking of per-frame detections into CTC tracks (track/laptrack.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track, check_tracks
from napari_cellseg.track.laptrack import (
    DIAMETER_FACTOR,
    automatic_max_distance,
    frame_detections,
    link,
)

pytest.importorskip("laptrack")

SHAPE = (64, 96)
RADIUS = 5


def _disc(frame: np.ndarray, centre: tuple[float, float], value: int) -> None:
    yy, xx = np.ogrid[: frame.shape[0], : frame.shape[1]]
    frame[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= RADIUS**2] = value


def _movie(n_frames: int = 6, gap: int | None = None) -> np.ndarray:
    """Cell A moves right (16, 10 + 4t); cell B sits at (46, 40) and divides between frames 2
    and 3 into daughters moving up-right and down-left. Ids are shuffled in every frame.

    ``gap``: the frame where cell A is missing.
    """
    stack = np.zeros((n_frames, *SHAPE), np.uint16)
    for t in range(n_frames):
        a, b, c = (7 + t, 3, 20 - t) if t % 2 else (2, 11 + t, 5)  # arbitrary per frame
        if t != gap:
            _disc(stack[t], (16, 10 + 4 * t), a)
        if t < 3:
            _disc(stack[t], (46, 40), b)
        else:
            _disc(stack[t], (40, 40 + (t - 2)), b)
            _disc(stack[t], (52, 40 - (t - 2)), c)
    return stack


def _at(labels: np.ndarray, t: int, centre: tuple[int, int]) -> int:
    return int(labels[t, centre[0], centre[1]])


def test_moving_discs_with_one_division_give_the_exact_ctc_tracks() -> None:
    stack = _movie()
    tracked, tracks = link(stack)
    # ids by first frame, then first centroid (y, x): A (y=16) is 1, B (y=46) 2;
    # daughters start at frame 3: the upper one (y=40) is 3, the lower one (y=52) 4
    assert tracks == [Track(1, 0, 5, 0), Track(2, 0, 2, 0), Track(3, 3, 5, 2), Track(4, 3, 5, 2)]
    assert tracked.dtype == np.int32 and tracked.shape == stack.shape
    assert [_at(tracked, t, (16, 10 + 4 * t)) for t in range(6)] == [1] * 6
    assert [_at(tracked, t, (46, 40)) for t in range(3)] == [2] * 3
    assert [_at(tracked, t, (40, 40 + t - 2)) for t in range(3, 6)] == [3] * 3
    assert [_at(tracked, t, (52, 40 - t + 2)) for t in range(3, 6)] == [4] * 3
    # same masks, only the ids change
    np.testing.assert_array_equal(tracked > 0, stack > 0)
    check_tracks(tracked, tracks, "link result")


def test_a_one_frame_gap_becomes_a_new_track_whose_parent_is_the_track_before_it() -> None:
    tracked, tracks = link(_movie(gap=3))
    assert tracks == [
        Track(1, 0, 2, 0),  # A up to the gap
        Track(2, 0, 2, 0),
        Track(3, 3, 5, 2),
        Track(4, 3, 5, 2),
        Track(5, 4, 5, 1),  # A after the gap, child of A before it
    ]
    assert [_at(tracked, t, (16, 10 + 4 * t)) for t in (0, 1, 2, 4, 5)] == [1, 1, 1, 5, 5]
    assert not (tracked[3] == 1).any()
    check_tracks(tracked, tracks, "link result")


def test_without_gap_closing_or_divisions_the_tracks_have_no_parent() -> None:
    _, tracks = link(_movie(gap=3), gap_frames=0)
    assert tracks[-1] == Track(5, 4, 5, 0)
    _, tracks = link(_movie(), divisions=False)
    # B continues into one of its (equally near) daughters; the other starts a track alone
    assert tracks == [Track(1, 0, 5, 0), Track(2, 0, 5, 0), Track(3, 3, 5, 0)]


def test_a_distance_shorter_than_the_motion_links_nothing() -> None:
    _, tracks = link(_movie(), max_distance=2.0)
    # A moves 4 px per frame: 6 one-frame tracks; B stays (1 track), daughters move ~1.4 px
    assert sum(t.begin == t.end for t in tracks) == 6
    assert all(t.parent == 0 for t in tracks)


def test_large_arbitrary_ids_give_the_same_result_as_small_ones() -> None:
    stack = _movie()
    big = stack.astype(np.int64) * 1_000_003 + (stack > 0) * 4_000_000_000
    small_tracked, small_tracks = link(stack)
    big_tracked, big_tracks = link(big)
    assert big_tracks == small_tracks
    np.testing.assert_array_equal(big_tracked, small_tracked)


def test_empty_frames_and_empty_stacks() -> None:
    stack = _movie()
    stack[0] = 0
    tracked, tracks = link(stack)
    assert tracks[0] == Track(1, 1, 5, 0)
    assert not tracked[0].any()
    tracked, tracks = link(np.zeros((4, 8, 8), np.uint8))
    assert tracks == [] and tracked.shape == (4, 8, 8) and not tracked.any()
    tracked, tracks = link(stack[:2])  # frame 0 empty, one frame of cells
    assert tracks == [Track(1, 1, 1, 0), Track(2, 1, 1, 0)]


def test_detections_and_the_automatic_distance() -> None:
    frame = np.zeros(SHAPE, np.uint16)
    _disc(frame, (16, 20), 9)
    _disc(frame, (40.5, 60), 4)
    d = frame_detections(frame)
    np.testing.assert_array_equal(d.ids, [4, 9])
    np.testing.assert_allclose(d.centroids, [[40.5, 60.0], [16.0, 20.0]])
    assert d.areas.tolist() == [int((frame == 4).sum()), int((frame == 9).sum())]
    diameter = 2 * np.sqrt(np.median(d.areas) / np.pi)
    assert automatic_max_distance([d]) == pytest.approx(DIAMETER_FACTOR * diameter)
    assert 2 * RADIUS - 1 < diameter < 2 * RADIUS + 2
    assert automatic_max_distance([frame_detections(np.zeros((3, 3), np.uint8))]) == 1.0


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (np.zeros((8, 8), np.uint16), "(T, Y, X)"),
        (np.zeros((2, 3, 8, 8), np.uint16), "4D"),
        (np.zeros((2, 8, 8), np.float32), "integer"),
        (np.full((2, 8, 8), -1, np.int32), "negative"),
    ],
)
def test_bad_stacks_are_user_errors_naming_the_input(labels: np.ndarray, words: str) -> None:
    with pytest.raises(CellsegError, match="labels") as caught:
        link(labels)
    assert words in str(caught.value)


def test_bad_parameters_are_user_errors() -> None:
    with pytest.raises(CellsegError, match="max_distance"):
        link(_movie(), max_distance=0)
    with pytest.raises(CellsegError, match="gap_frames"):
        link(_movie(), gap_frames=-1)


def test_missing_laptrack_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "laptrack", None)  # import laptrack raises ImportError
    with pytest.raises(CellsegError, match=r"napari-cellseg\[track\]"):
        link(_movie())


def test_many_cells_many_frames_stay_consistent() -> None:
    """Speed sanity (not timed): 30 frames of 400 drifting, jittered cells, ids shuffled."""
    rng = np.random.default_rng(0)
    n_frames, step = 30, 12
    ys, xs = np.meshgrid(np.arange(20) * step + 8, np.arange(20) * step + 8, indexing="ij")
    stack = np.zeros((n_frames, 256, 256), np.uint16)
    for t in range(n_frames):
        order = rng.permutation(ys.size) + 1
        jitter = rng.uniform(-1, 1, size=(2, ys.size))
        for k, (y, x) in enumerate(zip(ys.ravel() + jitter[0], xs.ravel() + jitter[1] + t * 0.5)):
            yy, xx = int(round(y)), int(round(x))
            stack[t, yy - 3 : yy + 4, xx - 3 : xx + 4] = order[k]
    tracked, tracks = link(stack, max_distance=5.0, gap_frames=0)
    check_tracks(tracked, tracks, "link result")
    assert len(tracks) == ys.size
    assert all(t.begin == 0 and t.end == n_frames - 1 and t.parent == 0 for t in tracks)
    # each track follows one cell: its centroid drifts by 0.5 px per frame
    first = frame_detections(tracked[0])
    last = frame_detections(tracked[-1])
    np.testing.assert_array_equal(first.ids, last.ids)
    drift = last.centroids - first.centroids
    assert np.abs(drift[:, 0]).max() < 2.5 and np.abs(drift[:, 1] - 14.5).max() < 2.5
