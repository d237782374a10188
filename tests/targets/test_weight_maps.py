"""DeLTA U-Net weight maps and targets on tiny masks with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellseg.targets import (
    estimate_seg2D_classweights,
    seg_weights,
    seg_weights_2D,
    separate_touching,
    unet_targets,
)


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def two_discs_two_px_apart() -> np.ndarray:
    """Discs of radius 5 at x = 10 and x = 23: columns 16 and 17 of row 10 are the gap."""
    lab = np.zeros((21, 34), dtype=np.int32)
    lab[disc(lab.shape, (10, 10), 5)] = 1
    lab[disc(lab.shape, (10, 23), 5)] = 2
    return lab


def test_seg_weights_gap_pixel_has_the_hand_computed_value():
    lab = two_discs_two_px_apart()
    assert lab[10, 15] == 1 and lab[10, 16] == 0 and lab[10, 17] == 0 and lab[10, 18] == 2
    w = seg_weights(lab)
    # (10, 16): d1 = 1 to the left disc, d2 = 2 to the right disc
    expected = 12.0 * math.exp(-((1 + 2) ** 2) / (2 * 2.0**2)) + 1.0
    assert w[10, 16] == pytest.approx(expected, rel=1e-5)
    assert w[10, 17] == pytest.approx(expected, rel=1e-5)
    assert np.all(w[lab > 0] == 1.0)


def test_seg_weights_class_weights_and_parameters():
    lab = two_discs_two_px_apart()
    w = seg_weights(lab, classweights=(0.5, 3.0), w0=10.0, sigma=5.0)
    expected = 10.0 * math.exp(-9 / 50) + 0.5
    assert w[10, 16] == pytest.approx(expected, rel=1e-5)
    assert np.all(w[lab > 0] == 3.0)

    # the whole map against a brute-force evaluation (exact distances to every object)
    dists = np.sort([ndi.distance_transform_edt(lab != i) for i in (1, 2)], axis=0)
    brute = 0.5 + 10.0 * np.exp(-((dists[0] + dists[1]) ** 2) / 50)
    brute[lab > 0] = 3.0
    np.testing.assert_allclose(w, brute, rtol=1e-5, atol=1e-5)


def test_seg_weights_matches_brute_force_with_many_cells():
    rng = np.random.default_rng(3)
    lab = np.zeros((50, 60), dtype=np.int32)
    for i in range(2, 9):
        lab[disc(lab.shape, tuple(rng.integers(5, 50, 2)), rng.uniform(2, 6))] = i
    weights = seg_weights(lab)
    lab = separate_touching(lab)  # overlapping discs touch: seg_weights carves 1-px gaps
    ids = [i for i in np.unique(lab) if i]
    dists = np.sort([ndi.distance_transform_edt(lab != i) for i in ids], axis=0)
    brute = 1.0 + 12.0 * np.exp(-((dists[0] + dists[1]) ** 2) / 8)
    brute[lab > 0] = 1.0
    np.testing.assert_allclose(weights, brute, rtol=1e-5, atol=12e-6)


def test_seg_weights_binary_mask_uses_connected_components():
    lab = two_discs_two_px_apart()
    np.testing.assert_array_equal(seg_weights(lab > 0), seg_weights(lab))
    np.testing.assert_array_equal(seg_weights((lab > 0).astype(np.uint8) * 255), seg_weights(lab))


def test_seg_weights_single_cell_has_no_separation_term():
    lab = disc((21, 21), (10, 10), 5).astype(np.int32)
    w = seg_weights(lab, classweights=(0.7, 1.3))
    assert np.all(w[lab == 0] == pytest.approx(0.7))
    assert np.all(w[lab > 0] == pytest.approx(1.3))


def test_separate_touching_carves_a_one_pixel_gap():
    lab = np.zeros((10, 12), dtype=np.int32)
    lab[2:8, 1:6] = 1
    lab[2:8, 6:11] = 2
    sep = separate_touching(lab)
    assert np.all(sep[2:8, 6] == 0) and np.all(sep[2:8, 5] == 1) and np.all(sep[2:8, 7] == 2)
    _, n = ndi.label(sep > 0, structure=np.ones((3, 3)))
    assert n == 2


def crowded_pair() -> np.ndarray:
    """Two long cells side by side with a 3-px gap, and a lone cell far away."""
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:12, 5:40] = True
    mask[15:22, 5:40] = True
    mask[30:36, 50:57] = True
    return mask


def test_seg_weights_2D_properties():
    mask = crowded_pair()
    w = seg_weights_2D(mask, classweights=(0.8, 0.6))
    assert w.dtype == np.float32
    assert np.all(w[mask] > 0)
    assert w.max() <= 1.0 + 1e-6
    # cell skeleton at the class weight for cells, gap midline at the class weight for gaps
    assert np.all(w[8, 10:35] == pytest.approx(0.8))
    assert np.all(w[13, 8:37] == pytest.approx(0.6))
    # the 1-px rim of a cell is barely weighted; background far from cells stays 0
    assert w[5, 20] == pytest.approx(1 / 255)
    assert np.all(w[0:3, :] == 0) and np.all(w[25:, :45] == 0)
    # no gap between a cell and the crop edge
    assert np.all(w[:, 0:4] == 0)


def test_estimate_seg2D_classweights_favours_the_rarer_skeleton():
    cw_cell, cw_gap = estimate_seg2D_classweights([crowded_pair()])
    assert max(cw_cell, cw_gap) == 1.0
    assert cw_cell < cw_gap  # three cell skeletons against one gap skeleton
    assert estimate_seg2D_classweights([np.zeros((5, 5), bool)]) == (1.0, 1.0)


def test_unet_targets_mask_and_weights():
    lab = two_discs_two_px_apart()
    t = unet_targets(lab, blobs=None)
    assert t.shape == (2, *lab.shape) and t.dtype == np.float32
    np.testing.assert_array_equal(t[0], lab > 0)
    np.testing.assert_allclose(t[1], seg_weights(lab))
    t2 = unet_targets(lab, blobs=None, weight_map="seg_weights_2D")
    np.testing.assert_allclose(t2[1], seg_weights_2D(lab))


def test_unet_targets_separates_touching_cells():
    lab = np.zeros((10, 12), dtype=np.int32)
    lab[2:8, 1:6] = 3
    lab[2:8, 6:11] = 4
    t = unet_targets(lab)
    assert np.all(t[0][2:8, 6] == 0)
    # the carved gap is the narrowest possible: d1 = d2 = 1
    assert t[1][4, 6] == pytest.approx(12.0 * math.exp(-4 / 8) + 1.0, rel=1e-5)


def test_unet_targets_blobs_ignore_or_object():
    lab = two_discs_two_px_apart()
    lab[0:3, 0:6] = 1  # a blob; the disc labelled 1 becomes 5
    lab[disc(lab.shape, (10, 10), 5)] = 5
    ignored = unet_targets(lab, blobs="ignore")
    assert np.all(ignored[0][0:3, 0:6] == 1) and np.all(ignored[1][0:3, 0:6] == 0)
    assert np.all(ignored[1][lab > 1] == 1.0)
    kept = unet_targets(lab, blobs="object")
    assert np.all(kept[0][0:3, 0:6] == 1) and np.all(kept[1][0:3, 0:6] == 1.0)
    with pytest.raises(ValueError, match="blobs"):
        unet_targets(lab, blobs="remove")


def test_unet_targets_use_given_weights():
    lab = two_discs_two_px_apart()
    wei = np.random.default_rng(0).random(lab.shape).astype(np.float32)
    t = unet_targets(lab, wei, blobs=None)
    np.testing.assert_array_equal(t[1], wei)
    with pytest.raises(ValueError, match="shape"):
        unet_targets(lab, wei[:-1])
    with pytest.raises(ValueError, match="weight_map"):
        unet_targets(lab, weight_map="unknown")
