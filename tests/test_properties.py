"""Property-based tests (hypothesis) where the input space is large: links files, label
bookkeeping against scikit-image, metrics invariants, warped crops, blockwise reconstruction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.measure import label as sk_label
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.links import links_by_frame, read_links, write_links
from napari_cellseg.metrics import average_precision, evaluate_pair, match
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


# ------------------------------------------------------------ blockwise reconstruction


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), block=st.integers(17, 48))
def test_blockwise_reconstruction_gives_the_whole_image_partition(seed, block):
    from napari_cellseg import synth
    from napari_cellseg.targets import omni_targets

    _, labels = synth.nuclei((96, 96), seed=seed)
    t = omni_targets(labels)
    rng = np.random.default_rng(seed)
    flow = t[:2] + rng.normal(0, 0.05, t[:2].shape).astype(np.float32)
    dist = t[2]
    whole = omni_masks(flow, dist, block=4096)
    blocks = omni_masks(flow, dist, block=block)
    assert whole.max() > 0
    # the same partition (ids may be numbered in another order): a one-to-one pairing
    pairs = set(zip(whole.ravel().tolist(), blocks.ravel().tolist()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert ((whole == 0) == (blocks == 0)).all()
