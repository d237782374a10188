"""Matching, AP, F1 and PQ on tiny hand-made label arrays whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.metrics import (
    AP_THRESHOLDS,
    average_precision,
    evaluate_pair,
    iou_matrix,
    match,
    summarize,
)


def _row(*runs: tuple[int, int]) -> np.ndarray:
    """A 1-row label image from (label, length) runs."""
    return np.concatenate([np.full(n, lab, dtype=np.int32) for lab, n in runs])[None, :]


def _squares(ids: list[int], size: int = 4, gap: int = 2) -> np.ndarray:
    """Non-touching squares in a row, labelled with ``ids``."""
    out = np.zeros((size, len(ids) * (size + gap)), dtype=np.int32)
    for k, lab in enumerate(ids):
        out[:, k * (size + gap) : k * (size + gap) + size] = lab
    return out


def test_iou_matrix_gives_exact_fractions_for_non_consecutive_ids():
    gt = _row((3, 4), (0, 2), (7, 4))  # ids 3 and 7
    pred = _row((9, 2), (2, 6), (0, 2))  # ids 2 and 9
    iou = iou_matrix(gt, pred)
    # rows: gt 3, 7; columns: pred 2, 9
    # gt3 = [0,4), gt7 = [6,10); pred9 = [0,2), pred2 = [2,8)
    expected = np.array([[2 / 8, 2 / 4], [2 / 8, 0.0]])
    np.testing.assert_allclose(iou, expected)


def test_iou_matrix_of_empty_images_has_zero_rows_or_columns():
    gt = _squares([1, 2])
    assert iou_matrix(gt, np.zeros_like(gt)).shape == (2, 0)
    assert iou_matrix(np.zeros_like(gt), gt).shape == (0, 2)


def test_iou_matrix_handles_huge_ids_and_many_objects():
    rng = np.random.default_rng(0)
    ids = rng.permutation(3000)[:2500] + 10**9  # huge, unsorted, non-consecutive
    gt = ids.reshape(50, 50).astype(np.int64)  # 2500 one-pixel objects: sparse table
    iou = iou_matrix(gt, gt)
    np.testing.assert_array_equal(iou, np.eye(2500))


def test_three_gt_two_correct_one_missed_one_false_positive_gives_ap_two_quarters():
    gt = _squares([1, 2, 3, 0])
    pred = _squares([5, 6, 0, 8])  # 5 = gt 1, 6 = gt 2, gt 3 missed, 8 is false
    result = match(gt, pred, 0.5)
    assert (result.tp, result.fp, result.fn) == (2, 1, 1)
    assert result.ap == pytest.approx(2 / 4)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)
    np.testing.assert_array_equal(result.gt_ids, [1, 2])
    np.testing.assert_array_equal(result.pred_ids, [5, 6])
    np.testing.assert_allclose(average_precision(gt, pred, [0.5, 0.9]), [0.5, 0.5])


def test_iou_equal_to_threshold_is_not_a_match():
    gt = _row((1, 4), (0, 4))
    pred = _row((1, 2), (0, 6))  # IoU exactly 0.5
    assert match(gt, pred, 0.5).tp == 0
    assert match(gt, pred, 0.49).tp == 1


def test_default_thresholds_are_exact_so_iou_0_65_fails_at_0_65_and_passes_at_0_60():
    gt = _row((1, 20))
    pred = _row((1, 13), (0, 7))  # IoU 13/20 = 0.65
    ap = average_precision(gt, pred)
    np.testing.assert_allclose(AP_THRESHOLDS, np.arange(10) * 0.05 + 0.5)
    np.testing.assert_array_equal(ap, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])


def test_below_half_the_hungarian_matching_beats_greedy():
    # gt A=[0,10) B=[10,17); pred Y=[0,4) X=[4,14)
    # IoU(A,X)=6/14 is the best pair, but taking it leaves B alone; A-Y (0.4) + B-X (4/13) is
    # the largest matching.
    gt = _row((1, 10), (2, 7))
    pred = _row((1, 4), (2, 10), (0, 3))
    result = match(gt, pred, 0.3)
    assert result.tp == 2
    np.testing.assert_array_equal(result.gt_ids, [1, 2])
    np.testing.assert_array_equal(result.pred_ids, [1, 2])
    np.testing.assert_allclose(result.ious, [0.4, 4 / 13])


def test_panoptic_quality_is_mean_matched_iou_times_f1():
    gt = _row((1, 10), (0, 2), (2, 10), (0, 8))
    # pred 1 == gt 1 (IoU 1), pred 2 covers 6 of gt 2's 10 px (IoU 0.6), pred 3 is false
    pred = _row((1, 10), (0, 2), (2, 6), (0, 6), (3, 6))
    row = evaluate_pair(gt, pred)
    assert (row["tp"], row["fp"], row["fn"]) == (2, 1, 0)
    assert row["sq"] == pytest.approx(0.8)
    assert row["mean_matched_iou"] == pytest.approx(0.8)
    assert row["rq"] == pytest.approx(2 / 2.5)
    assert row["pq"] == pytest.approx(0.8 * 0.8)


def test_empty_ground_truth_and_prediction_score_perfectly():
    empty = np.zeros((5, 5), dtype=np.int32)
    row = evaluate_pair(empty, empty)
    assert row["map"] == 1.0 and row["f1"] == 1.0 and row["pq"] == 1.0
    assert (row["n_gt"], row["n_pred"]) == (0, 0)


def test_empty_prediction_scores_zero_and_counts_every_object_missed():
    gt = _squares([1, 2, 3])
    row = evaluate_pair(gt, np.zeros_like(gt))
    assert row["fn"] == 3 and row["fp"] == 0
    assert row["ap_50"] == 0.0 and row["precision"] == 0.0 and row["recall"] == 0.0
    assert row["pq"] == 0.0 and row["mean_matched_iou"] == 0.0


def test_empty_ground_truth_with_predictions_scores_zero():
    pred = _squares([4, 5])
    row = evaluate_pair(np.zeros_like(pred), pred)
    assert row["fp"] == 2 and row["map"] == 0.0 and row["precision"] == 0.0


def test_evaluate_pair_reports_every_ap_threshold_and_their_mean():
    gt = _row((1, 20), (0, 2), (2, 10))
    pred = _row((1, 17), (0, 5), (2, 10))  # IoUs 0.85 and 1
    row = evaluate_pair(gt, pred)
    keys = [f"ap_{k}" for k in range(50, 100, 5)]
    assert all(k in row for k in keys)
    # at 0.85 and above only the exact object matches: 1 / (1 + 1 + 1)
    assert row["ap_80"] == 1.0 and row["ap_85"] == pytest.approx(1 / 3)
    assert row["map"] == pytest.approx(np.mean([row[k] for k in keys]))


def test_summarize_averages_images_and_pools_counts():
    perfect = evaluate_pair(_squares([1, 2, 3]), _squares([1, 2, 3]))
    missed = evaluate_pair(_squares([1]), np.zeros_like(_squares([1])))
    summary = summarize([perfect, {"name": "x.tif"} | missed])
    assert summary["n_images"] == 2
    assert summary["ap_50"] == pytest.approx(0.5)  # mean of 1 and 0
    assert (summary["n_gt"], summary["tp"], summary["fn"]) == (4, 3, 1)
    assert summary["pooled_ap_50"] == pytest.approx(3 / 4)
    assert summary["pooled_recall"] == pytest.approx(3 / 4)
    assert summary["pooled_precision"] == pytest.approx(1.0)
    assert summary["pooled_pq"] == pytest.approx(3 / 3.5)
    assert summary["pooled_f1"] == pytest.approx(2 * 3 / (4 + 3))
    assert summarize([]) == {"n_images": 0}


def test_pooled_scores_of_images_without_any_object_are_perfect_and_one_side_empty_zero():
    empty = evaluate_pair(np.zeros((8, 8), int), np.zeros((8, 8), int))
    both_empty = summarize([empty, empty])
    for key in ("pooled_ap_50", "pooled_precision", "pooled_recall", "pooled_f1", "pooled_pq"):
        assert both_empty[key] == 1.0, key
    missed = evaluate_pair(_squares([1]), np.zeros_like(_squares([1])))
    invented = evaluate_pair(np.zeros_like(_squares([1])), _squares([1]))
    for rows, zero in (([missed], "pooled_recall"), ([invented], "pooled_precision")):
        summary = summarize(rows)
        assert summary[zero] == 0.0 and summary["pooled_ap_50"] == 0.0
        assert summary["pooled_f1"] == 0.0 and summary["pooled_pq"] == 0.0
    # no prediction at all: precision has nothing to divide, and is 0, not "perfect"
    assert summarize([missed])["pooled_precision"] == 0.0
    assert summarize([invented])["pooled_recall"] == 0.0


def test_unsigned_and_boolean_label_arrays_are_accepted():
    gt = _squares([1, 2]).astype(np.uint64)
    assert match(gt, gt.astype(np.uint16), 0.5).tp == 2
    assert iou_matrix(gt > 0, gt == 1).tolist() == [[0.5]]


def test_mismatched_shapes_and_float_labels_are_refused():
    with pytest.raises(ValueError, match="shape"):
        match(np.zeros((4, 4), np.int32), np.zeros((4, 5), np.int32))
    with pytest.raises(TypeError, match="integer"):
        iou_matrix(np.zeros((4, 4)), np.zeros((4, 4), np.int32))


def _renumbered(labels: np.ndarray, offset: int, step: int = 7) -> np.ndarray:
    ids = np.unique(labels[labels > 0])
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[ids] = offset + 3 + step * np.arange(ids.size)
    return lut[labels]


@pytest.mark.parametrize("offset", [0, 10**9])  # lookup table, or the sorted path
@pytest.mark.parametrize("background", [True, False])
def test_scores_do_not_depend_on_label_ids_or_on_background(offset, background):
    rng = np.random.default_rng(3)
    gt = _squares([1, 2, 3, 4])
    pred = np.roll(gt, 2, axis=1)
    pred[pred == 3] = 0
    if not background:  # every pixel labelled: the background is one more object
        gt[gt == 0], pred[pred == 0] = 9, 9
    reference = evaluate_pair(gt, pred)
    moved = evaluate_pair(_renumbered(gt, offset), _renumbered(pred, offset + rng.integers(99)))
    assert moved == reference
    assert reference["n_gt"] == (4 if background else 5)


def test_many_objects_take_the_sparse_table_and_score_the_same():
    gt = np.arange(1, 60 * 80 + 1).reshape(60, 80)  # 4,800 one-pixel objects
    pred = gt.copy()
    pred[:, :40] = 0
    scores = evaluate_pair(gt, pred)
    assert (scores["n_gt"], scores["n_pred"], scores["tp"]) == (4800, 2400, 2400)
    assert scores["ap_50"] == pytest.approx(0.5) and scores["precision"] == 1.0
    assert match(gt, pred).n_pred == 2400


def test_zero_size_images_score_as_empty():
    empty = np.zeros((0, 5), int)
    scores = evaluate_pair(empty, empty)
    assert scores["n_gt"] == scores["n_pred"] == 0 and scores["ap_50"] == 1.0
    assert iou_matrix(empty, empty).shape == (0, 0)
