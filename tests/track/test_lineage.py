"""DeLTA's decoding: scores, attribution, continuation / division / orphans, poles."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.track.ctc import Track
from napari_cellseg.track.lineage import Lineage, attributions, poles, tracking_scores


def test_scores_are_the_fraction_of_each_new_cell_covered_by_the_output():
    labels = np.zeros((10, 10), np.int32)
    labels[0:2, 0:5] = 1  # area 10
    labels[5:10, 5:9] = 2  # area 20
    prob = np.zeros((6, 6), np.float32)
    prob[:, :] = 0.5
    prob[0, 0] = 0.01  # below the threshold
    # window at (-1, -1): covers rows 0..4, cols 0..4 of the frame
    scores = tracking_scores([prob], [(-1, -1)], labels, np.array([1, 2]))
    # cell 1 pixels in the window: rows 0-1, cols 0-4 = 10; the (0, 0) window pixel is outside
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] == 0.0
    prob2 = np.ones((4, 4), np.float32)
    scores = tracking_scores([prob2], [(6, 6)], labels, np.array([1, 2]))
    # the window covers rows 6..9 (4) x cols 6..8 (3) = 12 of cell 2's 20 pixels
    assert scores[0, 1] == pytest.approx(12 / 20)
    assert scores[0, 0] == 0.0


def test_each_seed_takes_at_most_its_two_best_new_cells():
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.0],  # seed 0 covers three new cells well
            [0.0, 0.0, 0.5, 0.1],  # seed 1 covers new cell 2 less well; cell 3 below 0.2
        ],
        np.float32,
    )
    got = attributions(scores, 0.2)
    np.testing.assert_array_equal(
        got,
        [[True, True, False, False], [False, False, True, False]],
    )


def test_a_new_cell_below_the_minimum_score_is_an_orphan():
    got = attributions(np.array([[0.19, 0.25]], np.float32), 0.2)
    np.testing.assert_array_equal(got, [[False, True]])
    assert attributions(np.zeros((0, 3), np.float32)).shape == (0, 3)


def frames():
    f0 = np.zeros((20, 40), np.int32)
    f0[2:6, 2:6] = 7  # ends
    f0[10:14, 10:30] = 9  # divides
    f0[2:6, 30:34] = 3  # continues
    f1 = np.zeros_like(f0)
    f1[10:14, 8:18] = 5  # daughter of 9, left
    f1[10:14, 22:32] = 6  # daughter of 9, right
    f1[3:7, 30:34] = 1  # 3 moved
    f1[16:19, 2:5] = 2  # orphan
    return f0, f1


def test_continuation_division_end_and_orphan_make_the_ctc_table():
    f0, f1 = frames()
    lin = Lineage()
    lin.start(f0)
    seeds = lin.maps[-1][0]
    np.testing.assert_array_equal(seeds, [3, 7, 9])
    # new ids ascending: 1, 2, 5, 6
    attributed = np.array(
        [[True, False, False, False], [False, False, False, False], [False, False, True, True]]
    )
    lin.update(f1, seeds, attributed)
    # tracks 1, 2, 3 = cells 3, 7, 9 of frame 0; then daughters 4, 5 and orphan 6
    assert lin.tracks() == [
        Track(1, 0, 1, 0),
        Track(2, 0, 0, 0),
        Track(3, 0, 0, 0),
        Track(4, 1, 1, 3),
        Track(5, 1, 1, 3),
        Track(6, 1, 1, 0),
    ]
    r0, r1 = lin.relabel(0, f0), lin.relabel(1, f1)
    assert set(np.unique(r0[f0 == 9])) == {3}
    assert set(np.unique(r1[f1 == 1])) == {1}
    assert {int(r1[f1 == 5][0]), int(r1[f1 == 6][0])} == {4, 5}
    assert int(r1[f1 == 2][0]) == 6
    assert (r1 == 0).sum() == (f1 == 0).sum()


def test_the_daughter_keeping_the_old_pole_keeps_the_mothers_cell_number():
    f0 = np.zeros((10, 60), np.int32)
    f0[4:7, 5:45] = 1  # a rod; give it an old pole at its left end
    lin = Lineage()
    lin.start(f0)
    live = lin._live[1]
    left_first = live.poles[0][1] < live.poles[1][1]
    f1 = np.zeros_like(f0)
    f1[4:7, 5:24] = 1
    f1[4:7, 26:45] = 2
    lin.update(f1, np.array([1]), np.array([[True, True]]))
    mother_cell = lin.cells[1]
    left, right = int(lin.relabel(1, f1)[5, 10]), int(lin.relabel(1, f1)[5, 40])
    keeper = left if left_first else right
    assert lin.cells[keeper] == mother_cell
    assert lin.cells[right if keeper == left else left] != mother_cell


def test_poles_are_the_ends_of_the_long_axis():
    m = np.zeros((10, 30), bool)
    m[4:6, 3:27] = True
    p = poles(m)
    assert sorted(p[:, 1].tolist()) == [3.0, 26.0]


def test_a_window_outside_the_frame_scores_nothing():
    labels = np.zeros((40, 40), np.int32)
    labels[5:10, 5:10] = 1
    scores = tracking_scores([np.ones((8, 8), np.float32)], [(50, 0)], labels, np.array([1]))
    assert scores.tolist() == [[0.0]]
