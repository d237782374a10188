"""Omnipose-style targets on tiny label matrices whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellseg.targets import (
    DIST_BG,
    OMNI_CHANNELS,
    edt,
    merge_linked_labels,
    omni_targets,
    omni_targets_batch,
)

FY, FX, DIST, BND, WEIGHT = range(len(OMNI_CHANNELS))


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def touching_squares() -> np.ndarray:
    lab = np.zeros((20, 30), dtype=np.uint16)
    lab[5:15, 5:15] = 1
    lab[5:15, 15:25] = 2
    return lab


def cosine(flow: np.ndarray, y: int, x: int, direction: tuple[float, float]) -> float:
    d = np.asarray(direction, dtype=float)
    return float(flow[:, y, x] @ d / np.linalg.norm(d))


def test_channel_order_is_the_documented_one():
    assert OMNI_CHANNELS == ("flow_y", "flow_x", "dist", "boundary", "weight")


def test_disc_distance_peaks_at_the_centre_at_about_the_radius():
    lab = disc((41, 41), (20, 20), 10).astype(np.int32)
    t = omni_targets(lab)
    assert t.shape == (5, 41, 41) and t.dtype == np.float32
    dist = t[DIST]
    assert np.unravel_index(np.argmax(dist), dist.shape) == (20, 20)
    assert dist[20, 20] == pytest.approx(10.0, abs=1.0)
    assert np.all(dist[lab == 0] == DIST_BG)
    assert dist[lab > 0].min() >= 1.0


def test_disc_flow_points_to_the_centre():
    lab = disc((41, 41), (20, 20), 10).astype(np.int32)
    flow = omni_targets(lab)[[FY, FX]]
    for y, x in [(20, 27), (13, 20), (26, 26), (15, 24), (20, 11), (28, 17)]:
        assert cosine(flow, y, x, (20 - y, 20 - x)) > 0.95, (y, x)
    inside = lab > 0
    norms = np.hypot(flow[0], flow[1])
    assert np.allclose(norms[inside & (norms > 0)], 1.0, atol=1e-5)
    assert np.all(norms[~inside] == 0)


def test_disc_boundary_and_weight():
    lab = disc((41, 41), (20, 20), 10).astype(np.int32)
    t = omni_targets(lab)
    fg = lab > 0
    ring = fg & ~ndi.binary_erosion(fg, structure=np.ones((3, 3)))
    assert np.array_equal(t[BND] > 0, ring)
    assert np.all(t[WEIGHT][fg] == 1.0) and np.all(t[WEIGHT][~fg] == 0.5)


def test_touching_squares_get_a_two_pixel_interface_with_small_distance():
    lab = touching_squares()
    t = omni_targets(lab)
    rows = slice(6, 14)
    assert np.all(t[BND][rows, 14] == 1) and np.all(t[BND][rows, 15] == 1)
    assert np.all(t[BND][rows, 13] == 0) and np.all(t[BND][rows, 16] == 0)
    assert t[DIST][rows, 14:16].max() < 1.6
    assert t[DIST][9, 9] > 3.5 and t[DIST][9, 20] > 3.5
    # on each side of the interface the flow points back into its own square
    assert np.all(t[FX][7:13, 14] < -0.5) and np.all(t[FX][7:13, 15] > 0.5)


def test_cell_cut_by_the_image_edge_has_no_boundary_there_and_keeps_growing():
    lab = np.zeros((40, 40), dtype=np.int32)
    lab[10:30, 0:10] = 3
    aware = omni_targets(lab)
    assert np.all(aware[BND][11:29, 0] == 0)
    row = aware[DIST][20, :10]
    assert np.all(np.diff(row) < 0)  # distance increases toward the edge
    assert cosine(aware[[FY, FX]], 20, 4, (0, -1)) > 0.95  # flow points out of the crop

    plain = omni_targets(lab, edge_aware=False)
    assert np.all(plain[BND][10:30, 0] == 1)
    assert plain[DIST][20, 0] < plain[DIST][20, 3]
    assert plain[DIST][20, 0] == pytest.approx(1.0, abs=0.5)


def test_linked_labels_behave_as_one_object():
    lab = touching_squares()
    linked = omni_targets(lab, {(1, 2)})
    merged = omni_targets(np.where(lab > 0, 1, 0))
    np.testing.assert_array_equal(linked, merged)
    assert np.all(linked[BND][6:14, 14:16] == 0)
    assert linked[DIST][9, 14] > 3.5


def test_merge_linked_labels_follows_chains_and_ignores_absent_ids():
    lab = np.array([[2, 3, 5, 7]], dtype=np.uint16)
    merged = merge_linked_labels(lab, {(3, 5), (2, 3), (9, 11)})
    np.testing.assert_array_equal(merged, [[2, 2, 2, 7]])
    np.testing.assert_array_equal(merge_linked_labels(lab, None), lab)


def test_merge_linked_labels_with_huge_ids():
    lab = np.array([[0, 3_000_000_000, 5]], dtype=np.uint64)
    merged = merge_linked_labels(lab, {(5, 3_000_000_000)})
    np.testing.assert_array_equal(merged, [[0, 5, 5]])


def test_empty_crop_has_background_targets():
    t = omni_targets(np.zeros((8, 9), dtype=np.uint16))
    assert np.all(t[[FY, FX, BND]] == 0)
    assert np.all(t[DIST] == DIST_BG) and np.all(t[WEIGHT] == 0.5)


def test_crop_inside_one_object_is_finite_and_still():
    t = omni_targets(np.full((6, 7), 4, dtype=np.int32))
    assert np.all(np.isfinite(t))
    assert np.all(t[[FY, FX, BND]] == 0) and np.all(t[DIST] > 0)


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="2D"):
        omni_targets(np.zeros((2, 3, 4), dtype=np.int32))
    with pytest.raises(ValueError, match=">= 0"):
        omni_targets(-np.ones((3, 3), dtype=np.int32))


def test_edt_matches_scipy():
    rng = np.random.default_rng(0)
    for shape, p in [((37, 53), 0.1), ((64, 31), 0.02), ((5, 80), 0.5)]:
        inside = rng.random(shape) > p
        inside[0, 0] = False
        np.testing.assert_allclose(edt(inside), ndi.distance_transform_edt(inside), atol=1e-4)
    assert np.all(np.isinf(edt(np.ones((3, 4), dtype=bool))))


def test_batch_stacks_single_crops():
    labs = np.stack([touching_squares(), np.zeros((20, 30), dtype=np.uint16)])
    batch = omni_targets_batch(labs, [{(1, 2)}, None])
    assert batch.shape == (2, 5, 20, 30)
    np.testing.assert_array_equal(batch[0], omni_targets(labs[0], {(1, 2)}))
    with pytest.raises(ValueError, match="links"):
        omni_targets_batch(labs, [None])


def crowded_crop(n_cells: int = 80, size: int = 224, seed: int = 0) -> np.ndarray:
    """Touching Voronoi cells clipped to discs of radius 14 (about 80 cells in 224x224)."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (n_cells, 2))
    yy, xx = np.indices((size, size))
    d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    lab = (d2.argmin(axis=-1) + 1).astype(np.uint16)
    lab[d2.min(axis=-1) > 14**2] = 0
    return lab


def test_targets_of_a_crowded_crop_keep_their_contract():
    """Every channel of a crop of 60 touching cells, checked against what it promises."""
    lab = crowded_crop()
    y = omni_targets(lab)
    fg = lab > 0
    norm = np.hypot(y[FY], y[FX])
    assert np.allclose(norm[~fg], 0) and np.allclose(norm[fg][norm[fg] > 0], 1, atol=1e-5)
    assert (norm[fg] > 0).mean() > 0.95  # still pixels only at distance maxima
    assert (y[DIST][~fg] == DIST_BG).all() and (y[DIST][fg] >= 1).all()
    assert set(np.unique(y[BND])) <= {0.0, 1.0} and not y[BND][~fg].any()
    # a pixel next to another cell or background is boundary; the distance is 1 there
    eroded = np.zeros_like(fg)
    for i in np.unique(lab[fg]):
        eroded |= ndi.binary_erosion(lab == i, structure=np.ones((3, 3)), border_value=1)
    edge = fg & ~eroded
    assert (y[BND][edge] == 1).all() and (y[DIST][edge] == 1).all()
    assert (y[WEIGHT][fg] == 1).all() and (y[WEIGHT][~fg] == 0.5).all()
    np.testing.assert_array_equal(omni_targets(lab), y)  # deterministic
