"""Property-based tests (hypothesis) where the input space is large: links files, label
bookkeeping against scikit-image, metrics invariants, warped crops, blockwise reconstruction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from skimage.measure import label as sk_label
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.links import links_by_frame, read_links, write_links
from napari_cellseg.metrics import AP_THRESHOLDS, average_precision, evaluate_pair, match
from napari_cellseg.reconstruction import fill_label_holes, omni_masks, remove_small, renumber

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI does not turn red by chance
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

label_images = arrays(
    np.int32,
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
    elements=st.integers(0, 7),
)
#: Objects of several 4x4 blocks with room between them: holes, and IoUs of all sizes.
blocky_images = arrays(
    np.int32, st.tuples(st.integers(1, 8), st.integers(1, 8)), elements=st.integers(0, 6)
).map(lambda small: np.kron(small, np.ones((4, 4), dtype=np.int32)))


# ------------------------------------------------------------------------------ links files


pairs = st.sets(
    st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)).filter(lambda p: p[0] != p[1]),
    max_size=30,
)


@SETTINGS
@given(links=pairs)
def test_links_written_are_read_back_as_the_same_pairs(tmp_path, links):
    path = write_links(tmp_path / "a_links.txt", links)
    assert read_links(path) == {(min(a, b), max(a, b)) for a, b in links}


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_in_a_links_file_is_read_or_refused_with_the_files_name(tmp_path, text):
    path = tmp_path / "x_links.txt"
    path.write_text(text, encoding="utf-8")
    try:
        found = read_links(path)
    except CellsegError as err:
        assert str(path) in str(err)
    else:
        assert all(0 < a < b for a, b in found)


@SETTINGS
@given(stack=arrays(np.int32, (3, 8, 9), elements=st.integers(0, 5)), links=pairs)
def test_links_of_a_stack_go_to_each_frame_that_holds_both_ids(stack, links):
    links = {(a % 6 or 1, b % 6 or 2) for a, b in links}
    links = {(min(a, b), max(a, b)) for a, b in links if a != b}
    split = links_by_frame(stack, links)
    for i, frame in enumerate(stack):
        present = set(np.unique(frame).tolist())
        expected = {(a, b) for a, b in links if a in present and b in present}
        assert split.get(i, set()) == expected


# ------------------------------------------------------------------ labels vs scikit-image


@SETTINGS
@given(labels=label_images, min_size=st.integers(0, 12))
def test_remove_small_agrees_with_scikit_image(labels, min_size):
    ours = remove_small(labels, min_size)
    # per label id (not per connected part): skimage counts pixels of each id the same way
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "only one label" on tiny draws
        theirs = remove_small_objects(labels, max_size=min_size - 1) if min_size > 1 else labels
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == labels.dtype


@SETTINGS
@given(labels=label_images)
def test_renumber_agrees_with_relabel_sequential(labels):
    np.testing.assert_array_equal(renumber(labels), relabel_sequential(labels)[0])


@SETTINGS
@given(labels=label_images, offset=st.sampled_from([0, 1000, 2**30]))
def test_renumber_agrees_with_relabel_sequential_whatever_the_ids(labels, offset):
    labels = np.where(labels > 0, labels * 3 + offset, 0).astype(np.int64)
    np.testing.assert_array_equal(renumber(labels), relabel_sequential(labels)[0])


def _holes_by_scipy(labels: np.ndarray) -> np.ndarray:
    """Reference for fill_label_holes: scipy's binary_fill_holes of each object, kept where
    the background region it fills borders that object alone (4-neighbours)."""
    out = labels.copy()
    regions, n = ndi.label(labels == 0)
    cross = ndi.generate_binary_structure(2, 1)
    for region in range(1, n + 1):
        inside = regions == region
        ring = ndi.binary_dilation(inside, cross) & ~inside
        around = np.unique(labels[ring])
        if around.size == 1 and ndi.binary_fill_holes(labels == around[0])[inside].all():
            out[inside] = around[0]
    return out


@SETTINGS
@given(
    labels=st.one_of(
        label_images, blocky_images, arrays(np.int32, (12, 12), elements=st.integers(0, 2))
    )
)
def test_fill_label_holes_agrees_with_scipy_binary_fill_holes(labels):
    np.testing.assert_array_equal(fill_label_holes(labels), _holes_by_scipy(labels))


@SETTINGS
@given(labels=label_images)
def test_filled_holes_only_grow_objects_into_enclosed_background(labels):
    filled = fill_label_holes(labels)
    changed = filled != labels
    assert (labels[changed] == 0).all()  # only background changes
    # every filled region is enclosed: it does not touch the image border
    regions = sk_label(changed, connectivity=1)
    border = set(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    assert border <= {0}
    np.testing.assert_array_equal(fill_label_holes(filled), filled)  # idempotent


# -------------------------------------------------------------------------------- metrics


@SETTINGS
@given(labels=label_images, seed=st.integers(0, 2**16))
def test_a_mask_scores_perfectly_against_itself_under_any_renumbering(labels, seed):
    ids = np.unique(labels[labels > 0])
    perm = np.zeros(int(labels.max()) + 1, np.int32)
    perm[ids] = np.random.default_rng(seed).permutation(ids.size) + 100
    shuffled = perm[labels]
    scores = evaluate_pair(labels, shuffled)
    assert scores["n_gt"] == scores["n_pred"] == ids.size
    if ids.size:
        assert scores["ap_50"] == scores["ap_75"] == scores["f1"] == scores["pq"] == 1.0


@SETTINGS
@given(gt=label_images, pred_seed=st.integers(0, 2**16), threshold=st.sampled_from([0.1, 0.5, 0.9]))
def test_matching_is_one_to_one_and_symmetric(gt, pred_seed, threshold):
    pred = np.random.default_rng(pred_seed).permutation(gt.ravel()).reshape(gt.shape)
    forward, backward = match(gt, pred, threshold), match(pred, gt, threshold)
    assert len(set(forward.gt_ids.tolist())) == forward.gt_ids.size
    assert len(set(forward.pred_ids.tolist())) == forward.pred_ids.size
    assert (forward.ious > threshold).all()
    # the same number of matches and total IoU both ways (with ties in the total IoU the
    # Hungarian algorithm may pick another of the equally good matchings)
    assert forward.gt_ids.size == backward.gt_ids.size
    assert forward.ious.sum() == pytest.approx(backward.ious.sum())
    if threshold >= 0.5:  # at most one candidate per object: the matching is unique
        assert sorted(zip(forward.gt_ids.tolist(), forward.pred_ids.tolist())) == sorted(
            zip(backward.pred_ids.tolist(), backward.gt_ids.tolist())
        )
    ap = average_precision(gt, pred, [threshold])[0]
    tp = forward.gt_ids.size
    fp, fn = forward.n_pred - tp, forward.n_gt - tp
    assert ap == pytest.approx(tp / (tp + fp + fn) if tp + fp + fn else 1.0)


def _reference_scores(gt: np.ndarray, pred: np.ndarray, threshold: float) -> dict:
    """Matching written from the definitions: IoU of every pair of ids by brute force; the
    most matches (maximum bipartite matching) and, among those, the largest total IoU (a
    Hungarian assignment where each match outweighs all IoUs together)."""
    gt_ids, pred_ids = np.unique(gt[gt > 0]), np.unique(pred[pred > 0])
    iou = np.zeros((gt_ids.size, pred_ids.size))
    for i, g in enumerate(gt_ids):
        for j, q in enumerate(pred_ids):
            a, b = gt == g, pred == q
            iou[i, j] = (a & b).sum() / (a | b).sum()
    ok = iou > threshold
    tp = int((maximum_bipartite_matching(csr_matrix(ok)) >= 0).sum()) if ok.size else 0
    total, pairs = 0.0, set()
    if tp:
        weight = min(ok.shape) + 1.0
        rows, cols = linear_sum_assignment(np.where(ok, weight + iou, 0.0), maximize=True)
        keep = ok[rows, cols]
        assert keep.sum() == tp
        total = float(iou[rows[keep], cols[keep]].sum())
        pairs = set(zip(gt_ids[rows[keep]].tolist(), pred_ids[cols[keep]].tolist()))
    n_gt, n_pred = gt_ids.size, pred_ids.size
    empty = n_gt == n_pred == 0
    fp, fn = n_pred - tp, n_gt - tp
    return {
        "tp": tp,
        "total_iou": total,
        "pairs": pairs,
        "ap": tp / (tp + fp + fn) if tp + fp + fn else float(empty),
        "pq": total / (tp + (fp + fn) / 2) if tp + fp + fn else float(empty),
        "f1": 2 * tp / (n_gt + n_pred) if n_gt + n_pred else float(empty),
        "n_gt": n_gt,
        "n_pred": n_pred,
    }


def _prediction(gt: np.ndarray, seed: int) -> np.ndarray:
    """``gt`` shifted by up to a pixel, ids permuted, 15 % of the pixels redrawn."""
    rng = np.random.default_rng(seed)
    pred = np.roll(gt, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
    perm = rng.permutation(int(gt.max()) + 1)
    pred = np.where(pred > 0, perm[pred] + 1, 0)
    noise = rng.random(gt.shape) < 0.15
    pred[noise] = rng.integers(0, 9, int(noise.sum()))
    return pred


@SETTINGS
@given(
    gt=st.one_of(blocky_images, label_images),
    seed=st.integers(0, 2**16),
    offset=st.sampled_from([0, 10**12]),  # lookup tables, or the sorted path for huge ids
)
def test_matching_ap_and_pq_agree_with_a_brute_force_reference(gt, seed, offset):
    pred = _prediction(gt, seed)
    gt = np.where(gt > 0, gt.astype(np.int64) + offset, 0)
    pred = np.where(pred > 0, pred.astype(np.int64) + offset, 0)
    ap = average_precision(gt, pred)
    for k, t in enumerate([0.0, 0.1, 0.3, *AP_THRESHOLDS]):
        ref = _reference_scores(gt, pred, float(t))
        ours = match(gt, pred, float(t))
        # below 0.5 several optimal matchings can tie: compare what they share
        assert ours.tp == ref["tp"], t
        assert ours.ious.sum() == pytest.approx(ref["total_iou"]), t
        assert (ours.n_gt, ours.n_pred) == (ref["n_gt"], ref["n_pred"])
        assert ours.ap == pytest.approx(ref["ap"]) and ours.pq == pytest.approx(ref["pq"])
        if t >= 0.5:
            assert set(zip(ours.gt_ids.tolist(), ours.pred_ids.tolist())) == ref["pairs"], t
            assert ap[k - 3] == pytest.approx(ref["ap"]), t
    scores, ref = evaluate_pair(gt, pred), _reference_scores(gt, pred, 0.5)
    assert scores["pq"] == pytest.approx(ref["pq"]) and scores["f1"] == pytest.approx(ref["f1"])
    assert (scores["tp"], scores["n_gt"], scores["n_pred"]) == (
        ref["tp"],
        ref["n_gt"],
        ref["n_pred"],
    )


# ------------------------------------------------------------ blockwise reconstruction


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), block=st.integers(17, 48))
def test_blockwise_reconstruction_gives_the_whole_image_partition(seed, block):
    from napari_cellseg import synth
    from napari_cellseg.targets import omni_targets

    _, labels = synth.nuclei((96, 96), seed=seed)
    t = omni_targets(labels)
    rng = np.random.default_rng(seed)
    flow = t[:2] + rng.normal(0, 0.05, t[:2].shape).astype(np.float32)
    dist = t[2]
    assume(labels.max() > 0)
    # min_size 0: a synthetic image may hold only a nucleus smaller than the default 15 px
    whole = omni_masks(flow, dist, block=4096, min_size=0)
    blocks = omni_masks(flow, dist, block=block, min_size=0)
    assert whole.max() > 0
    # the same partition (ids may be numbered in another order): a one-to-one pairing
    pairs = set(zip(whole.ravel().tolist(), blocks.ravel().tolist()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert ((whole == 0) == (blocks == 0)).all()
