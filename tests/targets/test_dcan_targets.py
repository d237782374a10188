"""DCAN object/contour targets and the CLB blob convention."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.targets import DCAN_CHANNELS, contours, dcan_targets

OBJ, CNT, VALID = range(len(DCAN_CHANNELS))


def two_squares() -> np.ndarray:
    lab = np.zeros((20, 30), dtype=np.uint16)
    lab[5:15, 5:15] = 2
    lab[5:15, 15:25] = 3
    return lab


def test_contours_are_two_pixels_thick_at_interfaces_and_outlines():
    t = dcan_targets(two_squares())
    assert t.shape == (3, 20, 30) and t.dtype == np.float32
    rows = slice(6, 14)
    assert np.all(t[CNT][rows, 14:16] == 1)  # interface: one pixel on each side
    assert np.all(t[CNT][rows, 13] == 0) and np.all(t[CNT][rows, 16] == 0)
    assert np.all(t[CNT][rows, 4:6] == 1)  # outline: background and object side
    assert np.all(t[CNT][rows, 3] == 0) and np.all(t[CNT][rows, 6] == 0)
    assert t[CNT][4, 4] == 0  # 4-connected: the diagonal corner pixel is not contour


def test_objects_are_cells_minus_contours():
    lab = two_squares()
    t = dcan_targets(lab)
    np.testing.assert_array_equal(t[OBJ], (lab > 0) & (t[CNT] == 0))
    assert t[OBJ][9, 9] == 1 and t[OBJ][9, 14] == 0
    assert np.all(t[VALID] == 1)


def test_thicker_contours():
    t = dcan_targets(two_squares(), boundary_thickness=4)
    assert np.all(t[CNT][6:14, 13:17] == 1)
    assert np.all(t[CNT][7:13, 12] == 0) and np.all(t[CNT][7:13, 17] == 0)
    with pytest.raises(ValueError, match="thickness"):
        contours(two_squares(), 1)


def test_image_edge_is_not_a_contour():
    lab = np.zeros((10, 10), dtype=np.int32)
    lab[:, :5] = 2
    t = dcan_targets(lab)
    assert np.all(t[CNT][:, 0] == 0) and np.all(t[CNT][0, :4] == 0)
    assert np.all(t[CNT][:, 4:6] == 1)


def test_blobs_are_ignored_or_kept_as_objects():
    lab = two_squares()
    lab[16:19, 2:8] = 1
    ignored = dcan_targets(lab)
    blob = lab == 1
    assert np.all(ignored[:, blob] == 0)
    assert np.all(ignored[VALID][~blob] == 1)
    kept = dcan_targets(lab, blobs="object")
    assert np.all(kept[VALID] == 1)
    assert kept[OBJ][17, 4] == 1 and kept[CNT][16, 4] == 1
    np.testing.assert_array_equal(dcan_targets(lab, blobs=None), kept)
