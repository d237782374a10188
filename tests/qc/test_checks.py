"""Every check of ``run_qc`` on tiny hand-made label matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.qc import CHECKS, SEVERITY, run_qc


def found(report, check: str) -> list:
    return [p for p in report.problems if p.check == check]


def square(labels: np.ndarray, y: int, x: int, size: int, value: int) -> None:
    labels[y : y + size, x : x + size] = value


# ---------------------------------------------------------------------- clean input


def test_clean_label_matrix_has_no_problem() -> None:
    labels = np.zeros((30, 30), dtype=np.uint16)
    square(labels, 3, 3, 8, 1)
    square(labels, 3, 11, 8, 2)  # touches label 1
    square(labels, 18, 5, 8, 3)
    report = run_qc(labels, (30, 30))
    assert report.problems == []
    assert not report.blocking
    assert report.n_labels == 3
    assert report.shape == (30, 30)


def test_every_check_has_a_severity() -> None:
    assert set(CHECKS) == set(SEVERITY)
    assert set(SEVERITY.values()) == {"blocking", "warning", "info"}


# ---------------------------------------------------------------------- semantic masks


def test_binary_mask_with_three_cells_is_semantic() -> None:
    mask = np.zeros((30, 30), dtype=np.uint8)
    for y, x in ((2, 2), (2, 18), (18, 10)):
        square(mask, y, x, 6, 255)
    report = run_qc(mask)
    (problem,) = found(report, "semantic_mask")
    assert problem.severity == "blocking" and problem.fixable
    assert problem.labels == (255,)
    assert problem.bbox == (2, 2, 24, 24)
    assert "3 separate objects" in problem.message
    assert not found(report, "split_label")  # the semantic problem explains the parts


def test_class_mask_with_two_values_is_semantic() -> None:
    mask = np.zeros((40, 40), dtype=np.uint8)
    for i, (y, x) in enumerate([(2, 2), (2, 20), (20, 2), (20, 20), (30, 30), (12, 12)]):
        square(mask, y, x, 5, 1 + i % 2)
    (problem,) = found(run_qc(mask), "semantic_mask")
    assert problem.labels == (1, 2)


def test_single_cell_labelled_one_is_not_semantic() -> None:
    labels = np.zeros((20, 20), dtype=np.uint8)
    square(labels, 5, 5, 6, 1)
    assert run_qc(labels).problems == []


def test_binary_mask_with_two_cells_is_a_split_label() -> None:
    mask = np.zeros((20, 20), dtype=np.uint8)
    square(mask, 1, 1, 5, 1)
    square(mask, 12, 12, 5, 1)
    report = run_qc(mask)
    assert not found(report, "semantic_mask")
    (problem,) = found(report, "split_label")
    assert problem.labels == (1,)


def test_label_matrix_with_one_split_label_is_not_semantic() -> None:
    labels = np.zeros((40, 40), dtype=np.uint16)
    square(labels, 1, 1, 5, 2)
    square(labels, 1, 20, 5, 3)
    square(labels, 20, 1, 5, 4)
    square(labels, 30, 30, 5, 4)  # label 4 in two parts
    report = run_qc(labels)
    assert not found(report, "semantic_mask")
    assert [p.labels for p in found(report, "split_label")] == [(4,)]


# ---------------------------------------------------------------------- split labels


def test_split_label_reports_both_parts_and_their_box() -> None:
    labels = np.zeros((30, 30), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    square(labels, 2, 10, 5, 2)
    square(labels, 20, 20, 5, 2)
    (problem,) = found(run_qc(labels), "split_label")
    assert problem.labels == (2,)
    assert problem.bbox == (2, 10, 25, 25)
    assert problem.severity == "blocking" and problem.fixable
    assert "2 separate parts (25, 25 px)" in problem.message


def test_parts_that_all_touch_the_border_are_one_cut_cell() -> None:
    labels = np.zeros((20, 30), dtype=np.uint16)
    labels[14:20, 2:8] = 3
    labels[14:20, 20:26] = 3  # joined below the image
    labels[2:8, 10:16] = 1
    labels[2:8, 22:28] = 2
    report = run_qc(labels, border=True)
    assert not found(report, "split_label")
    (problem,) = found(report, "border")
    assert "in 2 parts (joined outside the image)" in problem.message
    labels[18:20, 20:22] = 4  # a small cut cell, also in two parts
    labels[18:20, 25:27] = 4
    assert not {"split_label", "fragment"} & {p.check for p in run_qc(labels).problems}
    labels[14:20, 20:26] = 0
    labels[10:16, 20:26] = 3  # one part away from the border: split
    assert found(run_qc(labels), "split_label")


def test_diagonal_touch_keeps_a_label_in_one_part() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    square(labels, 7, 7, 5, 1)  # meets the first square at one corner
    assert not found(run_qc(labels), "split_label")


def test_split_label_joined_through_links_is_not_split() -> None:
    labels = np.zeros((20, 30), dtype=np.uint16)
    square(labels, 2, 2, 5, 5)
    labels[2:7, 7:23] = 6  # label 6 bridges both parts of label 5
    square(labels, 2, 23, 5, 5)
    assert found(run_qc(labels), "split_label")
    assert not found(run_qc(labels, links={(5, 6)}), "split_label")


def test_linked_labels_that_do_not_touch_are_split() -> None:
    labels = np.zeros((20, 30), dtype=np.uint16)
    square(labels, 2, 2, 5, 5)
    square(labels, 2, 20, 5, 7)
    (problem,) = found(run_qc(labels, links={(5, 7)}), "split_label")
    assert problem.labels == (5, 7)
    assert "linked labels 5+7" in problem.message


def test_links_to_missing_ids_are_ignored() -> None:
    labels = np.zeros((10, 10), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    assert run_qc(labels, links={(1, 99)}).problems == []


def test_small_stray_piece_is_a_fragment_not_a_split() -> None:
    labels = np.zeros((30, 30), dtype=np.uint16)
    square(labels, 2, 2, 8, 1)
    labels[20, 20] = 1
    report = run_qc(labels)
    assert not found(report, "split_label")
    (problem,) = found(report, "fragment")
    assert problem.labels == (1,) and problem.bbox == (20, 20, 21, 21)
    assert "a piece of label 1" in problem.message


# ---------------------------------------------------------------------- CLB blobs


def clb_mask() -> np.ndarray:
    labels = np.zeros((40, 40), dtype=np.uint16)
    square(labels, 2, 2, 6, 1)  # blobs: label 1 in three parts
    square(labels, 30, 2, 6, 1)
    square(labels, 2, 30, 6, 1)
    square(labels, 15, 15, 5, 2)
    square(labels, 25, 25, 5, 3)
    return labels


def test_label_one_in_parts_beside_ordinary_cells_is_reported_as_clb_blobs() -> None:
    report = run_qc(clb_mask())
    (problem,) = found(report, "blobs_label")
    assert problem.severity == "info"
    assert problem.labels == (1,) and problem.bbox == (2, 2, 36, 36)
    assert not report.blocking
    assert not found(report, "split_label")


def test_blobs_false_makes_label_one_an_ordinary_split_label() -> None:
    report = run_qc(clb_mask(), blobs=False)
    assert not found(report, "blobs_label")
    assert [p.labels for p in found(report, "split_label")] == [(1,)]


def test_blobs_true_leaves_label_one_out_of_the_cell_checks() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    labels[0, 0] = 1  # a tiny blob at the border would otherwise be a cut cell
    square(labels, 5, 5, 5, 2)
    square(labels, 12, 12, 5, 3)
    report = run_qc(labels, blobs=True)
    assert [p.check for p in report.problems] == ["blobs_label"]


# ---------------------------------------------------------------------- gaps


def two_cells(seam: int, height: int = 12) -> np.ndarray:
    """Two 8-px wide cells side by side, ``seam`` background columns apart."""
    labels = np.zeros((height + 4, 24 + seam), dtype=np.uint16)
    labels[2 : 2 + height, 2:10] = 1
    labels[2 : 2 + height, 10 + seam : 18 + seam] = 2
    return labels


@pytest.mark.parametrize("seam", [1, 2])
def test_gap_between_neighbouring_cells_is_reported(seam: int) -> None:
    (problem,) = found(run_qc(two_cells(seam)), "gap")
    assert problem.labels == (1, 2)
    assert problem.bbox == (2, 10, 14, 10 + seam)
    assert problem.severity == "warning" and problem.fixable
    assert "12 px long" in problem.message


@pytest.mark.parametrize(
    ("seam", "max_gap", "reported"),
    [(1, 1, True), (2, 1, False), (2, 2, True), (3, 2, False), (3, 3, True), (4, 3, False)],
)
def test_seam_wider_than_max_gap_is_real_background(seam: int, max_gap: int, reported) -> None:
    assert bool(found(run_qc(two_cells(seam), max_gap=max_gap), "gap")) == reported


def test_max_gap_zero_turns_the_gap_check_off() -> None:
    assert not found(run_qc(two_cells(1), max_gap=0), "gap")


def discs(distance: int) -> np.ndarray:
    """Two discs of radius 7, ``distance`` px apart; the second does not overwrite the first."""
    yy, xx = np.mgrid[:20, : 16 + distance]
    labels = np.zeros(yy.shape, dtype=np.uint16)
    labels[(yy - 10) ** 2 + (xx - 8) ** 2 <= 49] = 1
    labels[((yy - 10) ** 2 + (xx - 8 - distance) ** 2 <= 49) & (labels == 0)] = 2
    return labels


@pytest.mark.parametrize("distance", [12, 13])
def test_touching_cells_with_notches_beside_their_interface_are_not_a_gap(distance: int) -> None:
    labels = discs(distance)
    touching = (labels[:, :-1] == 1) & (labels[:, 1:] == 2)
    assert touching.sum() >= 3
    assert not found(run_qc(labels), "gap")


def test_round_cells_that_barely_touch_are_a_gap() -> None:
    (problem,) = found(run_qc(discs(14)), "gap")
    assert problem.labels == (1, 2)
    assert "they touch along only 1 px" in problem.message


def test_cells_meeting_only_at_a_corner_are_not_a_gap() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 2, 2, 6, 1)
    square(labels, 9, 9, 6, 2)  # one background pixel diagonally between the corners
    assert not found(run_qc(labels), "gap")


def test_gap_next_to_a_fragment_is_not_reported() -> None:
    labels = np.zeros((12, 20), dtype=np.uint16)
    labels[2:10, 2:9] = 1
    labels[4:6, 10:12] = 2  # 4 px: a fragment, 1 px from label 1
    report = run_qc(labels)
    assert not found(report, "gap")
    assert found(report, "fragment")


# ---------------------------------------------------------------------- fragments, border


def test_tiny_label_is_a_fragment() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 2, 2, 6, 1)
    square(labels, 12, 12, 3, 2)
    (problem,) = found(run_qc(labels), "fragment")
    assert problem.labels == (2,) and problem.bbox == (12, 12, 15, 15)
    assert problem.severity == "warning" and problem.fixable
    assert "label 2 has only 9 px" in problem.message
    assert not found(run_qc(labels, min_size=9), "fragment")


def test_small_cell_cut_by_the_border_is_not_a_fragment() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 0, 8, 2, 1)
    report = run_qc(labels, border=True)
    assert not found(report, "fragment")
    (problem,) = found(report, "border")
    assert problem.labels == (1,) and problem.bbox == (0, 8, 2, 10)


def test_labels_touching_the_border_are_information_when_asked_for() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 0, 0, 5, 1)
    square(labels, 15, 15, 5, 2)
    square(labels, 8, 8, 5, 3)
    report = run_qc(labels, border=True)
    assert [p.labels for p in found(report, "border")] == [(1,), (2,)]
    assert all(p.severity == "info" and not p.fixable for p in report.problems)


def test_the_border_check_is_off_by_default() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 0, 0, 5, 1)
    square(labels, 15, 15, 5, 2)
    assert run_qc(labels).problems == []


# ---------------------------------------------------------------------- file-level checks


def test_shape_mismatch_with_the_image_is_blocking() -> None:
    labels = np.zeros((10, 10), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    (problem,) = found(run_qc(labels, (10, 12)), "shape_mismatch")
    assert problem.severity == "blocking"
    for image_shape in [(10, 10), (10, 10, 3), (2, 10, 10)]:
        assert not found(run_qc(labels, image_shape), "shape_mismatch")


def test_empty_mask_is_a_warning_only() -> None:
    report = run_qc(np.zeros((10, 10), dtype=np.uint16))
    assert [(p.check, p.severity) for p in report.problems] == [("empty_mask", "warning")]
    assert not report.blocking
    assert report.n_labels == 0


def test_non_consecutive_ids_are_information() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    square(labels, 10, 10, 5, 7)
    (problem,) = found(run_qc(labels), "non_consecutive")
    assert problem.severity == "info"
    assert "2 labels use ids up to 7 (5 unused)" in problem.message


def test_huge_label_ids_are_handled() -> None:
    labels = np.zeros((20, 20), dtype=np.int64)
    square(labels, 2, 2, 5, 10**12)
    square(labels, 10, 10, 5, 3)
    square(labels, 10, 2, 5, 10**12)
    report = run_qc(labels)
    assert [p.labels for p in found(report, "split_label")] == [(10**12,)]
    assert found(report, "non_consecutive")


def test_ids_reaching_the_dtype_maximum_mean_too_many_labels() -> None:
    labels = np.zeros((64, 64), dtype=np.uint8)
    ids = iter(range(1, 256))
    for y in range(0, 64, 4):
        for x in range(0, 64, 4):
            labels[y : y + 3, x : x + 3] = next(ids, 0)
    (problem,) = found(run_qc(labels, min_size=1), "too_many_labels")
    assert problem.severity == "blocking"
    assert "reach 255" in problem.message
    labels[labels == 255] = 0
    assert not found(run_qc(labels, min_size=1), "too_many_labels")


def test_png_holds_at_most_65535_labels() -> None:
    labels = np.zeros((10, 10), dtype=np.int32)
    square(labels, 2, 2, 5, 70000)
    assert not found(run_qc(labels), "too_many_labels")
    assert found(run_qc(labels, max_label=65535), "too_many_labels")


def test_float_mask_of_whole_numbers_is_blocking_and_checked_further() -> None:
    labels = np.zeros((20, 20), dtype=np.float32)
    square(labels, 2, 2, 5, 1)
    square(labels, 10, 10, 3, 2)
    report = run_qc(labels)
    assert [p.check for p in report.problems] == ["float_mask", "fragment"]
    assert report.problems[0].fixable and report.blocking


def test_probability_map_is_a_float_mask_that_cannot_be_fixed() -> None:
    probabilities = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    report = run_qc(probabilities, (10, 11))
    assert [p.check for p in report.problems] == ["float_mask", "shape_mismatch"]
    assert not report.problems[0].fixable


def test_bool_mask_is_accepted() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    square(mask, 5, 5, 6, True)
    assert run_qc(mask).problems == []


@pytest.mark.parametrize(
    "labels", [np.zeros((2, 5, 5), dtype=np.uint16), -np.ones((5, 5), dtype=np.int32)]
)
def test_programming_errors_raise(labels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        run_qc(labels)


def test_problems_come_in_check_order() -> None:
    labels = np.zeros((30, 30), dtype=np.uint16)
    square(labels, 0, 0, 5, 9)  # border, non-consecutive
    square(labels, 10, 10, 2, 2)  # fragment
    square(labels, 20, 2, 5, 3)
    square(labels, 20, 20, 5, 3)  # split
    checks = [p.check for p in run_qc(labels, border=True).problems]
    assert checks == sorted(checks, key=CHECKS.index)
    assert set(checks) == {"split_label", "fragment", "border", "non_consecutive"}


def _remapped(report, mapping):
    """A report's findings with their label ids mapped back through ``mapping``."""
    return sorted(
        (p.check, p.severity, tuple(sorted(mapping.get(i, i) for i in p.labels)), p.bbox)
        for p in report.problems
    )


@pytest.mark.parametrize("offset", [0, 10_000_000])  # a lookup table, or the sorted path
@pytest.mark.parametrize("background", [True, False])
def test_findings_do_not_depend_on_the_label_ids_or_on_having_background(offset, background):
    from napari_cellseg import synth

    _, labels = synth.nuclei((96, 96), seed=2, touching=0.5)
    labels = labels.astype(np.int64)
    labels[40:42, 3:6] = labels.max() + 1  # a fragment-sized label
    if not background:  # every pixel labelled: the background becomes one more (big) label
        labels[labels == 0] = labels.max() + 1
    ids = np.unique(labels[labels > 0])
    new = np.zeros(int(labels.max()) + 1, np.int64)
    new[ids] = np.arange(ids.size) * 7 + 3 + offset  # other, non-consecutive ids
    moved = new[labels]
    back = {int(new[i]): int(i) for i in ids}
    reference, report = run_qc(labels), run_qc(moved)
    assert report.n_labels == reference.n_labels == ids.size
    ignore = {"non_consecutive"}  # the new ids are gapped on purpose
    drop = lambda found: [f for f in found if f[0] not in ignore]  # noqa: E731
    assert drop(_remapped(report, back)) == drop(_remapped(reference, {}))
    assert "fragment" in {p.check for p in reference.problems}


def _diagonal_cells(size: int = 20, seam: int = 1) -> np.ndarray:
    """Two triangles either side of a diagonal background band ``seam`` pixels thick."""
    yy, xx = np.indices((size, size))
    labels = np.zeros((size, size), np.uint16)
    labels[(xx - yy) > seam] = 1
    labels[(yy - xx) > 0] = 2
    labels[[0, -1], :] = labels[:, [0, -1]] = 0  # off the border
    return labels


@pytest.mark.parametrize(
    "labels",
    [two_cells(1), two_cells(2).T.copy(), _diagonal_cells(), two_cells(1)[:, ::-1].copy()],
    ids=["side by side", "one above the other", "diagonal", "mirrored"],
)
def test_gaps_are_found_and_closed_whatever_their_orientation(labels) -> None:
    from napari_cellseg.qc import fix as qc_fix

    (problem,) = found(run_qc(labels), "gap")
    assert problem.labels == (1, 2)
    fixed = qc_fix(labels, "gap")
    assert not found(run_qc(fixed), "gap")
    grown = (fixed != labels) & (labels == 0)
    assert grown.any() and (fixed[fixed != labels] > 0).all()
    assert set(np.unique(fixed[grown]).tolist()) <= {1, 2}
    for value in (1, 2):  # each cell only grows
        assert ((labels == value) <= (fixed == value)).all()
