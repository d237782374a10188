"""Mask reconstruction on synthetic outputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellseg.metrics import iou_matrix, match
from napari_cellseg.reconstruction import (
    dcan_masks,
    fill_label_holes,
    follow_flows,
    omni_masks,
    remove_small,
    renumber,
    unet_masks,
)
from napari_cellseg.reconstruction.omni import (
    _bilinear_table,
    _follow_numpy,
    _follow_torch,
    _hysteresis,
)


def _discs(shape: tuple[int, int], centres: list[tuple[float, float]], radius: float) -> np.ndarray:
    """Discs labelled 1..N; where two overlap, the nearer centre wins (a straight interface)."""
    yy, xx = np.indices(shape)
    d2 = np.stack([(yy - cy) ** 2 + (xx - cx) ** 2 for cy, cx in centres])
    nearest = d2.argmin(axis=0)
    return np.where(d2.min(axis=0) <= radius**2, nearest + 1, 0).astype(np.int32)


def _capsule(shape: tuple[int, int], p0, p1, radius: float) -> np.ndarray:
    """Pixels within ``radius`` of the segment p0-p1 (a rod)."""
    yy, xx = np.indices(shape).astype(float)
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx), 0, 1)
    return (yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2 <= radius**2


def _edt_fields(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow = normalised gradient of each object's own distance transform; dist = that EDT."""
    dist = np.zeros(labels.shape)
    flow = np.zeros((2, *labels.shape))
    for lab in np.unique(labels[labels > 0]):
        inside = labels == lab
        d = ndi.distance_transform_edt(inside)
        g = np.stack(np.gradient(d))
        norm = np.hypot(g[0], g[1])
        g = np.where(norm > 1e-6, g / np.maximum(norm, 1e-6), 0.0)
        dist[inside] = d[inside]
        flow[:, inside] = g[:, inside]
    return flow.astype(np.float32), np.where(labels > 0, dist, -5.0).astype(np.float32)


def _best_ious(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return iou_matrix(truth, labels).max(axis=1)


def test_two_touching_discs_give_exactly_two_masks_matching_the_truth():
    truth = _discs((40, 60), [(20, 20), (20, 36)], 8.5)
    assert ndi.label(truth > 0)[1] == 1  # they touch
    flow, dist = _edt_fields(truth)
    labels = omni_masks(flow, dist)
    assert labels.dtype == np.int32
    assert labels.max() == 2
    assert (_best_ious(truth, labels) > 0.9).all()


def test_small_touching_nuclei_of_diameter_six_are_all_recovered():
    centres = [(8, 8), (8, 14), (8, 26), (20, 8), (20, 20), (26, 20), (22, 30)]
    truth = _discs((34, 40), centres, 3.0)
    flow, dist = _edt_fields(truth)
    labels = omni_masks(flow, dist)
    result = match(truth, labels, 0.5)
    assert (result.tp, result.fp, result.fn) == (len(centres), 0, 0)


@pytest.mark.parametrize(
    ("p0", "p1"),
    [((20, 10), (20, 70)), ((8, 8), (40, 72))],  # straight and diagonal rods
)
def test_a_rod_is_one_mask_not_fragmented(p0, p1):
    truth = _capsule((48, 80), p0, p1, 4.0).astype(np.int32)
    flow, dist = _edt_fields(truth)
    labels = omni_masks(flow, dist)
    assert labels.max() == 1
    assert _best_ious(truth, labels)[0] > 0.9


def test_a_curved_rod_is_one_mask():
    yy, xx = np.indices((60, 60))
    r = np.hypot(yy - 50, xx - 30)
    truth = ((np.abs(r - 30) <= 4) & (yy <= 50)).astype(np.int32)  # a half ring, 8 px thick
    flow, dist = _edt_fields(truth)
    labels = omni_masks(flow, dist)
    assert labels.max() == 1
    assert _best_ious(truth, labels)[0] > 0.9


def test_side_by_side_rods_stay_apart():
    truth = np.zeros((40, 70), dtype=np.int32)
    for k, y in enumerate((10, 17, 24)):  # 7 px wide rods touching along their length
        truth[_capsule(truth.shape, (y, 8), (y, 60), 3.5) & (truth == 0)] = k + 1
    flow, dist = _edt_fields(truth)
    labels = omni_masks(flow, dist)
    result = match(truth, labels, 0.5)
    assert (result.tp, result.fp, result.fn) == (3, 0, 0)


def test_flow_threshold_drops_the_mask_whose_flow_is_inconsistent():
    truth = _discs((40, 70), [(20, 17), (20, 50)], 10)
    flow, dist = _edt_fields(truth)
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, 2 * np.pi, truth.shape)
    noise = np.stack([np.sin(angle), np.cos(angle)]).astype(np.float32)
    flow[:, truth == 2] = noise[:, truth == 2]
    kept = omni_masks(flow, dist, flow_threshold=0.4)
    assert kept.max() == 1
    assert _best_ious(truth, kept)[0] > 0.9
    assert not kept[truth == 2].any()
    assert omni_masks(flow, dist, flow_threshold=0)[truth == 2].any()


def test_flow_check_does_not_depend_on_the_output_scale():
    truth = _discs((40, 60), [(20, 20), (20, 36)], 8.5)
    flow, dist = _edt_fields(truth)
    np.testing.assert_array_equal(omni_masks(5 * flow, dist), omni_masks(flow, dist))


def test_boundary_probability_cuts_touching_cells_that_flows_did_not_separate():
    truth = _discs((40, 60), [(20, 20), (20, 36)], 8.5)
    flow, dist = _edt_fields(truth)
    assert omni_masks(flow, dist, niter=0, flow_threshold=0).max() == 1  # no motion: one blob
    interface = (ndi.maximum_filter(truth, 3) != ndi.minimum_filter(truth, 3)) & (truth > 0)
    labels = omni_masks(flow, dist, interface.astype(np.float32), niter=0, flow_threshold=0)
    assert labels.max() == 2
    assert (_best_ious(truth, labels) > 0.8).all()


def test_no_foreground_gives_no_masks():
    labels = omni_masks(np.zeros((2, 10, 12), np.float32), np.full((10, 12), -5.0, np.float32))
    assert labels.shape == (10, 12) and labels.dtype == np.int32 and not labels.any()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="flow"):
        omni_masks(np.zeros((2, 10, 12)), np.zeros((10, 11)))


def test_foreground_is_hysteresis_on_the_distance():
    dist = np.array([[-0.5, 0.5, -0.5, -2.0, -0.5]])
    # the weak pixel next to a strong one is kept, the isolated weak one is not
    np.testing.assert_array_equal(_hysteresis(dist, -1.0, 0.0), [[True, True, True, False, False]])


def test_torch_integration_matches_numpy():
    truth = _discs((30, 40), [(15, 12), (15, 26)], 7)
    flow, _ = _edt_fields(truth)
    table = _bilinear_table(flow * 0.7)
    ys, xs = np.nonzero(truth)
    start = (ys.astype(np.float32), xs.astype(np.float32))
    a = _follow_numpy(table, truth.shape, (0, 0), *(s.copy() for s in start), 8)
    b = _follow_torch(table, truth.shape, (0, 0), *(s.copy() for s in start), 8, "cpu")
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_following_flows_in_a_window_gives_the_whole_image_end_points():
    truth = _discs((60, 80), [(20, 20), (20, 36), (45, 60)], 9)
    flow, _ = _edt_fields(truth)
    niter = 6
    whole = follow_flows(flow, *np.nonzero(truth), niter)
    oy, ox = 12, 25  # a window holding every pixel within niter + 3 of the points followed
    ys, xs = np.nonzero(truth[oy + niter + 3 : 50, ox + niter + 3 : 70])
    ys, xs = ys + niter + 3, xs + niter + 3
    part = follow_flows(flow[:, oy:, ox:], ys, xs, niter, origin=(oy, ox))
    index = {(y, x): i for i, (y, x) in enumerate(zip(*np.nonzero(truth)))}
    rows = [index[y + oy, x + ox] for y, x in zip(ys, xs)]
    np.testing.assert_array_equal(part, whole[:, rows])


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects, whatever their numbers."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


@pytest.mark.parametrize("block", [23, 40, 64])
def test_blockwise_reconstruction_gives_the_whole_image_labels(block):
    rng = np.random.default_rng(3)
    centres = [tuple(c) for c in rng.uniform(8, 112, size=(40, 2))]
    truth = _discs((120, 150), centres, 7.5)
    rod = _capsule(truth.shape, (20, 118), (100, 140), 3.5)  # long: crosses several blocks
    truth = np.where(rod, truth.max() + 1, truth)
    flow, dist = _edt_fields(truth)
    flow += rng.normal(0, 0.35, flow.shape).astype(np.float32)  # some masks fail the check
    boundary = (ndi.morphological_gradient(truth, size=3) > 0).astype(np.float32)
    kw = {"flow_threshold": 0.4, "min_size": 5}
    whole = omni_masks(flow, dist, boundary, block=10_000, **kw)
    assert 30 < whole.max() < 45
    assert _same_partition(omni_masks(flow, dist, boundary, block=block, **kw), whole)
    no_check = omni_masks(flow, dist, boundary, block=10_000, flow_threshold=0, min_size=5)
    assert no_check.max() > whole.max()  # the check had masks to drop


def test_holes_enclosed_by_one_object_are_filled_and_others_not():
    labels = np.zeros((9, 14), dtype=np.int32)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 0  # hole in object 1
    labels[1:6, 7:10] = 2
    labels[1:6, 10:13] = 3
    labels[3, 9:11] = 0  # gap between objects 2 and 3: not a hole
    labels[0, 2] = 0  # notch open to the image edge
    filled = fill_label_holes(labels)
    assert filled[3, 3] == 1
    assert (filled[3, 9:11] == 0).all()
    assert (filled[labels > 0] == labels[labels > 0]).all()


def test_small_objects_are_removed_and_the_rest_renumbered():
    labels = np.zeros((6, 12), dtype=np.int32)
    labels[0:4, 0:4] = 7  # 16 px
    labels[5, 5] = 3  # 1 px
    labels[0:3, 6:11] = 9  # 15 px
    out = renumber(remove_small(labels, 15))
    assert out.dtype == np.int32
    assert sorted(np.unique(out)) == [0, 1, 2]
    assert (out[0:4, 0:4] == 1).all() and (out[0:3, 6:11] == 2).all() and out[5, 5] == 0


def _prob_from(truth: np.ndarray) -> np.ndarray:
    return ndi.gaussian_filter((truth > 0).astype(np.float32), 0.7)


def test_unet_watershed_splits_two_touching_discs():
    truth = _discs((40, 60), [(20, 20), (20, 36)], 8.5)
    prob = _prob_from(truth)
    labels = unet_masks(prob)
    assert labels.max() == 2
    assert (_best_ious(truth, labels) > 0.85).all()
    assert unet_masks(prob, watershed=False).max() == 1


def test_unet_keeps_a_rod_and_a_thin_object_whole():
    truth = _capsule((40, 80), (20, 8), (20, 70), 5).astype(np.int32)
    truth[2:4, 5:40] = 2  # 2 px thin line: no distance maximum deep enough to seed it
    labels = unet_masks((truth > 0).astype(np.float32))
    assert labels.max() == 2
    assert (_best_ious(truth, labels) > 0.95).all()


def test_unet_refuses_logits():
    with pytest.raises(ValueError, match="sigmoid"):
        unet_masks(np.full((5, 5), 3.0))


def test_dcan_contour_between_two_cells_gives_two_masks():
    truth = _discs((40, 60), [(20, 20), (20, 36)], 8.5)
    obj = (truth > 0).astype(np.float32)
    edges = ndi.maximum_filter(truth, 3) != ndi.minimum_filter(truth, 3)
    contour = (edges & (truth > 0)).astype(np.float32)
    labels = dcan_masks(obj, contour)
    assert labels.max() == 2
    assert (_best_ious(truth, labels) > 0.9).all()
    # without the contour the seeds touch: one object
    assert dcan_masks(obj, np.zeros_like(contour)).max() == 1


def test_dcan_object_without_seed_is_kept():
    obj = np.zeros((20, 30), dtype=np.float32)
    obj[5:15, 5:25] = 1.0
    contour = obj.copy()  # everything is contour: no seed
    labels = dcan_masks(obj, contour)
    assert labels.max() == 1 and (labels[obj > 0] == 1).all()


# ------------------------------------------------- the documented defaults and boundaries


def _blob(shape, size: int, at=(3, 3)) -> np.ndarray:
    """A probability map with one object of exactly ``size`` pixels (a row-major run)."""
    prob = np.zeros(shape, np.float32)
    prob.reshape(-1)[np.ravel_multi_index(at, shape) + np.arange(size)] = 0.9
    return prob


@pytest.mark.parametrize("family", ["unet", "dcan"])
def test_objects_of_15_pixels_are_kept_and_of_14_removed_by_default(family):
    from napari_cellseg.reconstruction import dcan_masks, unet_masks

    def masks(prob):
        if family == "unet":
            return unet_masks(prob, watershed=False)
        return dcan_masks(prob, np.zeros_like(prob))

    shape = (8, 40)
    assert masks(_blob(shape, 15)).max() == 1
    assert masks(_blob(shape, 14)).max() == 0


@pytest.mark.parametrize("family", ["unet", "dcan"])
def test_a_probability_equal_to_the_threshold_is_background(family):
    from napari_cellseg.reconstruction import dcan_masks, unet_masks

    prob = np.full((12, 12), 0.5, np.float32)
    prob[2:8, 2:8] = 0.51
    if family == "unet":
        labels = unet_masks(prob, watershed=False)
    else:
        labels = dcan_masks(prob, np.zeros_like(prob))
    assert (labels > 0).sum() == 36


def test_without_watershed_unet_objects_are_8_connected():
    from napari_cellseg.reconstruction import unet_masks

    prob = np.zeros((20, 20), np.float32)
    prob[2:6, 2:6] = prob[6:10, 6:10] = 0.9  # two squares touching at one corner
    assert unet_masks(prob, watershed=False).max() == 1


def test_probabilities_outside_0_1_are_refused_naming_the_map():
    from napari_cellseg.reconstruction import dcan_masks, unet_masks

    bad, good = np.full((4, 4), 2.0, np.float32), np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="^prob must hold probabilities"):
        unet_masks(bad)
    with pytest.raises(ValueError, match="^obj must hold probabilities"):
        dcan_masks(bad, good)
    with pytest.raises(ValueError, match="^contour must hold probabilities"):
        dcan_masks(good, bad)
    with pytest.raises(ValueError, match=r"one shape: \(4, 4\), \(4, 5\)"):
        dcan_masks(good, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="one shape"):
        dcan_masks(good[None], good[None])


def test_watershed_split_depth_decides_whether_two_touching_discs_split():
    """Two discs of radius 15: the deeper the neck between them, the more split depths split."""
    from napari_cellseg.reconstruction import unet_masks

    yy, xx = np.indices((60, 110))
    found = {}
    for apart in (6, 14, 22, 30):
        prob = np.zeros((60, 110), np.float32)
        for cx in (25, 25 + apart):
            prob[(yy - 30) ** 2 + (xx - cx) ** 2 <= 225] = 0.9
        found[apart] = [int(unet_masks(prob, split_depth=d).max()) for d in (0.5, 2, 4, 8)]
    assert found == {6: [1, 1, 1, 1], 14: [2, 1, 1, 1], 22: [2, 2, 2, 1], 30: [2, 2, 2, 2]}
