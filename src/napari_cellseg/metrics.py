"""Instance-segmentation scores: IoU matching, average precision, F1 and panoptic quality.

Everything works on integer label arrays of any shape (0 = background, any positive ids, not
necessarily consecutive). Overlaps come from one sparse contingency table over the paired
labels, so the cost is one pass over the pixels whatever the number of objects.

Definitions (Omnipose/Cellpose/Data Science Bowl 2018):

- a ground-truth object and a predicted object *match* at threshold ``t`` when their IoU is
  strictly greater than ``t``; each object matches at most one other (optimal one-to-one
  matching; for ``t >= 0.5`` matches are unique by construction);
- ``AP(t) = TP / (TP + FP + FN)`` (the "Jaccard" curve of the Omnipose paper);
- precision ``TP / n_pred``, recall ``TP / n_gt``, ``F1 = 2 TP / (n_gt + n_pred)``;
- panoptic quality ``PQ = SQ * RQ`` with ``SQ`` the mean IoU of the matched pairs and
  ``RQ = TP / (TP + FP/2 + FN/2)`` (Kirillov et al. 2019), i.e. ``F1``.

Zero denominators: when both images are empty every score is 1 (nothing to find, nothing
found); otherwise a ratio with a zero denominator is 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

#: IoU thresholds 0.50, 0.55, ..., 0.95, rounded so that an IoU of exactly 0.65 compares as
#: expected against the 0.65 threshold.
AP_THRESHOLDS: np.ndarray = np.round(np.arange(0.5, 1.0, 0.05), 2)

#: Per-image score keys that :func:`summarize` averages, besides the ``ap_XX`` keys.
SCORE_KEYS: tuple[str, ...] = (
    "map",
    "precision",
    "recall",
    "f1",
    "mean_matched_iou",
    "pq",
    "sq",
    "rq",
)

#: Per-image count keys that :func:`summarize` adds up.
COUNT_KEYS: tuple[str, ...] = ("n_gt", "n_pred", "tp", "fp", "fn")


@dataclass(frozen=True)
class MatchResult:
    """One-to-one matching of ground-truth and predicted objects at one IoU threshold.

    Attributes
    ----------
    threshold
        The IoU threshold; a pair matches when its IoU is strictly greater.
    n_gt, n_pred
        Number of ground-truth and predicted objects.
    gt_ids, pred_ids
        Label ids of the matched pairs (same length, pair ``k`` is ``gt_ids[k]``-``pred_ids[k]``),
        sorted by ground-truth id.
    ious
        IoU of each matched pair.
    """

    threshold: float
    n_gt: int
    n_pred: int
    gt_ids: np.ndarray
    pred_ids: np.ndarray
    ious: np.ndarray

    @property
    def tp(self) -> int:
        """Matched pairs (true positives)."""
        return int(self.ious.size)

    @property
    def fp(self) -> int:
        """Predicted objects without a match (false positives)."""
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        """Ground-truth objects without a match (false negatives)."""
        return self.n_gt - self.tp

    @property
    def ap(self) -> float:
        """``TP / (TP + FP + FN)``."""
        return _ratio(self.tp, self.tp + self.fp + self.fn, self._empty)

    @property
    def precision(self) -> float:
        """``TP / n_pred``."""
        return _ratio(self.tp, self.n_pred, self._empty)

    @property
    def recall(self) -> float:
        """``TP / n_gt``."""
        return _ratio(self.tp, self.n_gt, self._empty)

    @property
    def f1(self) -> float:
        """``2 TP / (n_gt + n_pred)``; equal to the panoptic recognition quality ``rq``."""
        return _ratio(2 * self.tp, self.n_gt + self.n_pred, self._empty)

    @property
    def mean_matched_iou(self) -> float:
        """Mean IoU of the matched pairs; equal to the panoptic segmentation quality ``sq``."""
        return _ratio(float(self.ious.sum()), self.tp, self._empty)

    @property
    def pq(self) -> float:
        """Panoptic quality ``sq * rq`` = sum of matched IoUs / (TP + FP/2 + FN/2)."""
        return _ratio(float(self.ious.sum()), self.tp + 0.5 * (self.fp + self.fn), self._empty)

    @property
    def _empty(self) -> bool:
        return self.n_gt == 0 and self.n_pred == 0


def _ratio(num: float, den: float, both_empty: bool) -> float:
    """``num / den``; 1 when both images are empty, else 0 when ``den`` is 0."""
    if den > 0:
        return float(num / den)
    return 1.0 if both_empty else 0.0


@dataclass(frozen=True)
class _Overlaps:
    """Sparse contingency table of two label arrays."""

    gt_ids: np.ndarray  # (n_gt,) label ids present in gt, ascending
    pred_ids: np.ndarray  # (n_pred,)
    rows: np.ndarray  # (n_pairs,) index into gt_ids of each overlapping pair
    cols: np.ndarray  # (n_pairs,) index into pred_ids
    iou: np.ndarray  # (n_pairs,) IoU of each overlapping pair (> 0)


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map labels to 0..n (0 stays background); return the mapped array and the ids."""
    flat = labels.ravel()
    if flat.dtype == bool:
        flat = flat.view(np.uint8)
    if flat.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    if not np.issubdtype(flat.dtype, np.integer):
        raise TypeError(f"label arrays must be integer, got {labels.dtype}")
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0:
        raise ValueError("label arrays must not contain negative values")
    if hi <= 4 * flat.size + 1024:  # lookup table: one pass, no sort
        flat = flat.astype(np.intp, copy=False)
        present = np.bincount(flat, minlength=hi + 1) > 0
        present[0] = False
        ids = np.flatnonzero(present)
        lut = np.zeros(hi + 1, dtype=np.intp)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat], ids.astype(np.int64)
    uniq, inverse = np.unique(flat, return_inverse=True)
    if uniq[0] != 0:
        return inverse.astype(np.intp) + 1, uniq.astype(np.int64)
    return inverse.astype(np.intp), uniq[1:].astype(np.int64)


def _overlaps(gt: np.ndarray, pred: np.ndarray) -> _Overlaps:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: gt {gt.shape} vs pred {pred.shape}")
    g, gt_ids = _dense_labels(gt)
    p, pred_ids = _dense_labels(pred)
    n_g, n_p = gt_ids.size + 1, pred_ids.size + 1
    if n_g * n_p <= max(g.size, 1 << 20):  # dense table: one bincount
        table = np.bincount(g * n_p + p, minlength=n_g * n_p).reshape(n_g, n_p)
        gt_area, pred_area = table.sum(axis=1), table.sum(axis=0)
        rows, cols = np.nonzero(table[1:, 1:])
        rows, cols = rows + 1, cols + 1
        inter = table[rows, cols]
    else:  # many objects: sparse table, duplicates summed
        coo = sparse.coo_matrix((np.ones(g.size, dtype=np.int64), (g, p)), shape=(n_g, n_p))
        table = coo.tocsr()
        gt_area = np.asarray(table.sum(axis=1)).ravel()
        pred_area = np.asarray(table.sum(axis=0)).ravel()
        table = table.tocoo()
        keep = (table.row > 0) & (table.col > 0)
        rows, cols, inter = table.row[keep], table.col[keep], table.data[keep]
    iou = inter / (gt_area[rows] + pred_area[cols] - inter)
    return _Overlaps(gt_ids, pred_ids, rows.astype(np.intp) - 1, cols.astype(np.intp) - 1, iou)


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every ground-truth object with every predicted object.

    Parameters
    ----------
    gt, pred
        Integer label arrays of the same shape; 0 is background, ids need not be consecutive
        (a boolean array is one object).

    Returns
    -------
    numpy.ndarray
        float64 array ``(n_gt, n_pred)``; row ``i`` is the ``i``-th smallest ground-truth id
        present, column ``j`` the ``j``-th smallest predicted id.
    """
    ov = _overlaps(gt, pred)
    out = np.zeros((ov.gt_ids.size, ov.pred_ids.size))
    out[ov.rows, ov.cols] = ov.iou
    return out


def _match(ov: _Overlaps, threshold: float) -> MatchResult:
    ok = ov.iou > threshold
    rows, cols, iou = ov.rows[ok], ov.cols[ok], ov.iou[ok]
    if threshold < 0.5 and rows.size:
        # Candidates may compete: maximise the number of matches, then their total IoU.
        r_ids, r = np.unique(rows, return_inverse=True)
        c_ids, c = np.unique(cols, return_inverse=True)
        dense = np.zeros((r_ids.size, c_ids.size))
        dense[r, c] = iou
        # Each match is worth more than 1, the IoU bonus of all matches together less than 1.
        cost = -np.where(dense > 0, 1.0 + dense / (2.0 * min(dense.shape)), 0.0)
        ri, ci = linear_sum_assignment(cost)
        good = dense[ri, ci] > 0
        rows, cols, iou = r_ids[ri[good]], c_ids[ci[good]], dense[ri[good], ci[good]]
    order = np.argsort(rows, kind="stable")
    return MatchResult(
        threshold=float(threshold),
        n_gt=int(ov.gt_ids.size),
        n_pred=int(ov.pred_ids.size),
        gt_ids=ov.gt_ids[rows[order]],
        pred_ids=ov.pred_ids[cols[order]],
        ious=np.asarray(iou, dtype=np.float64)[order],
    )


def match(gt: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> MatchResult:
    """Match ground-truth and predicted objects one-to-one at an IoU threshold.

    Parameters
    ----------
    gt, pred
        Integer label arrays of the same shape (0 = background).
    threshold
        A pair can match when its IoU is strictly greater than this. For ``threshold >= 0.5``
        each object has at most one candidate; below 0.5 the Hungarian algorithm picks the
        largest set of matches, and among those the largest total IoU.

    Returns
    -------
    MatchResult
        Counts, matched ids and IoUs, and the scores derived from them.
    """
    return _match(_overlaps(gt, pred), threshold)


def average_precision(
    gt: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] | np.ndarray = AP_THRESHOLDS
) -> np.ndarray:
    """``TP / (TP + FP + FN)`` at each IoU threshold.

    Parameters
    ----------
    gt, pred
        Integer label arrays of the same shape (0 = background).
    thresholds
        IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns
    -------
    numpy.ndarray
        float64 array with one value per threshold.
    """
    ov = _overlaps(gt, pred)
    return np.array([_match(ov, float(t)).ap for t in np.atleast_1d(thresholds)])


def ap_key(threshold: float) -> str:
    """Dictionary key of the AP at ``threshold``: ``0.5 -> 'ap_50'``, ``0.75 -> 'ap_75'``."""
    return f"ap_{round(threshold * 100):02d}"


def evaluate_pair(gt: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    """All scores of one image.

    Parameters
    ----------
    gt, pred
        Integer label arrays of the same shape (0 = background).

    Returns
    -------
    dict
        ``ap_50``, ``ap_55``, ..., ``ap_95`` and their mean ``map``; at IoU 0.5: ``precision``,
        ``recall``, ``f1``, ``mean_matched_iou``, ``pq``, ``sq``, ``rq``, and the counts
        ``tp``, ``fp``, ``fn``; ``n_gt`` and ``n_pred``.
    """
    ov = _overlaps(gt, pred)
    results = [_match(ov, float(t)) for t in AP_THRESHOLDS]
    row: dict[str, float | int] = {ap_key(r.threshold): r.ap for r in results}
    row["map"] = float(np.mean([r.ap for r in results]))
    at50 = results[0]
    row.update(
        precision=at50.precision,
        recall=at50.recall,
        f1=at50.f1,
        mean_matched_iou=at50.mean_matched_iou,
        pq=at50.pq,
        sq=at50.mean_matched_iou,
        rq=at50.f1,
        n_gt=at50.n_gt,
        n_pred=at50.n_pred,
        tp=at50.tp,
        fp=at50.fp,
        fn=at50.fn,
    )
    return row


def summarize(rows: Sequence[dict]) -> dict[str, float | int]:
    """Combine the per-image rows of :func:`evaluate_pair` into one summary.

    Scores (``ap_XX``, ``map``, ``precision``, ``recall``, ``f1``, ``mean_matched_iou``,
    ``pq``, ``sq``, ``rq``) are the **mean over images**, each image counting once, as in the
    Cellpose/Omnipose papers. Counts (``n_gt``, ``n_pred``, ``tp``, ``fp``, ``fn``, at IoU 0.5)
    are **summed**, and the ``pooled_*`` keys are the IoU-0.5 scores of the pooled counts
    (every object counting once): ``pooled_ap_50``, ``pooled_precision``, ``pooled_recall``,
    ``pooled_f1`` and ``pooled_pq`` (matched IoUs weighted by each image's TP count).
    ``n_images`` is the number of rows. Other keys of the rows (e.g. a file name) are ignored.

    Parameters
    ----------
    rows
        Dictionaries as returned by :func:`evaluate_pair`.

    Returns
    -------
    dict
        The summary; for no rows, only ``n_images = 0``.
    """
    out: dict[str, float | int] = {"n_images": len(rows)}
    if not rows:
        return out
    keys = [ap_key(t) for t in AP_THRESHOLDS] + list(SCORE_KEYS)
    for key in keys:
        out[key] = float(np.mean([r[key] for r in rows]))
    for key in COUNT_KEYS:
        out[key] = int(sum(int(r[key]) for r in rows))
    tp, fp, fn = int(out["tp"]), int(out["fp"]), int(out["fn"])
    n_gt, n_pred = int(out["n_gt"]), int(out["n_pred"])
    sum_iou = float(sum(r["mean_matched_iou"] * r["tp"] for r in rows))
    empty = n_gt == 0 and n_pred == 0
    out["pooled_ap_50"] = _ratio(tp, tp + fp + fn, empty)
    out["pooled_precision"] = _ratio(tp, n_pred, empty)
    out["pooled_recall"] = _ratio(tp, n_gt, empty)
    out["pooled_f1"] = _ratio(2 * tp, n_gt + n_pred, empty)
    out["pooled_pq"] = _ratio(sum_iou, tp + 0.5 * (fp + fn), empty)
    return out


def tracking_scores(
    res_dir: str | os.PathLike, gt_dir: str | os.PathLike, **kwargs
) -> dict[str, float]:
    """Cell Tracking Challenge DET, SEG and TRA of a result folder against its ground truth.

    A thin entry point to :func:`napari_cellseg.track.scores.ctc_scores` (imported only when
    called; it needs ``pip install napari-cellseg[track]``).

    Parameters
    ----------
    res_dir : str or os.PathLike
        The result folder (``01_RES``: ``maskNNN.tif`` + ``res_track.txt``).
    gt_dir : str or os.PathLike
        The ground truth (``01_GT`` with ``TRA/`` and optionally ``SEG/``).
    **kwargs
        Passed on (``metrics=("DET", "TRA")``).

    Returns
    -------
    dict
        The scores (a :class:`~napari_cellseg.track.scores.CTCScores`, whose ``skipped``
        says why a measure was not computed).
    """
    from napari_cellseg.track.scores import ctc_scores

    return ctc_scores(res_dir, gt_dir, **kwargs)
