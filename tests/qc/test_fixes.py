"""Every fix on tiny hand-made label matrices: exactly the expected pixels change."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.qc import FIX_ORDER, FIXABLE, SEVERITY, fix, fix_all, run_qc


def square(labels: np.ndarray, y: int, x: int, size: int, value: int) -> None:
    labels[y : y + size, x : x + size] = value


def checks(labels: np.ndarray, **params) -> set[str]:
    return {p.check for p in run_qc(labels, **params).problems}


def test_fixable_checks_are_the_documented_ones() -> None:
    assert FIXABLE == {"float_mask", "semantic_mask", "split_label", "fragment", "gap"}
    assert set(FIX_ORDER) == FIXABLE <= set(SEVERITY)


@pytest.mark.parametrize("check", ["border", "shape_mismatch", "non_consecutive", "nonsense"])
def test_checks_without_a_fix_raise(check: str) -> None:
    with pytest.raises(ValueError, match="no automatic fix"):
        fix(np.zeros((5, 5), dtype=np.uint16), check)


def test_seam_fix_fills_exactly_the_seam() -> None:
    labels = np.zeros((16, 26), dtype=np.uint16)
    labels[2:14, 2:10] = 1
    labels[2:14, 12:20] = 2  # a 2-px seam in columns 10 and 11
    before = labels.copy()
    fixed = fix(labels, "gap")
    expected = labels.copy()
    expected[2:14, 10] = 1
    expected[2:14, 11] = 2
    np.testing.assert_array_equal(fixed, expected)
    np.testing.assert_array_equal(labels, before)  # the input is never modified
    assert "gap" not in checks(fixed)


def test_seam_fix_never_grows_into_wide_background() -> None:
    labels = np.zeros((20, 30), dtype=np.uint16)
    labels[2:14, 2:10] = 1
    labels[2:14, 11:19] = 2  # 1-px seam
    square(labels, 16, 24, 4, 3)  # a lone cell: its surroundings stay background
    fixed = fix(labels, "gap")
    changed = fixed != labels
    assert changed.sum() == 12 and changed[2:14, 10].all()
    np.testing.assert_array_equal(fixed[fixed != labels], 1)


def test_seam_fix_on_a_slanted_seam_leaves_no_holes() -> None:
    yy, xx = np.mgrid[:40, :40]
    labels = np.zeros((40, 40), dtype=np.uint16)
    labels[(xx - yy < -1) & (np.abs(xx + yy - 40) < 20)] = 1
    labels[(xx - yy > 1) & (np.abs(xx + yy - 40) < 20)] = 2  # a diagonal seam 3 px wide
    fixed = fix(labels, "gap")
    seam = (np.abs(xx - yy) <= 1) & (np.abs(xx + yy - 40) < 18)
    assert (fixed[seam] > 0).all()
    assert "gap" not in checks(fixed)


def test_fragment_fix_removes_fragments_only() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 2, 2, 6, 1)
    labels[15, 15] = 1  # stray piece of label 1
    square(labels, 12, 2, 3, 2)  # tiny label
    labels[0, 10] = 3  # tiny cell cut by the border: kept
    fixed = fix(labels, "fragment")
    expected = labels.copy()
    expected[15, 15] = 0
    expected[12:15, 2:5] = 0
    np.testing.assert_array_equal(fixed, expected)


def test_split_fix_gives_the_smaller_part_a_new_id() -> None:
    labels = np.zeros((30, 30), dtype=np.uint8)
    square(labels, 2, 2, 6, 4)
    square(labels, 20, 20, 5, 4)
    square(labels, 20, 2, 5, 2)
    fixed = fix(labels, "split_label")
    assert (fixed[2:8, 2:8] == 4).all()  # the largest part keeps its id
    assert (fixed[20:25, 20:25] == 5).all()  # new id above the largest one
    assert (fixed[20:25, 2:7] == 2).all()
    assert "split_label" not in checks(fixed)


def test_split_fix_widens_the_dtype_when_new_ids_do_not_fit() -> None:
    labels = np.zeros((30, 30), dtype=np.uint8)
    square(labels, 2, 2, 6, 255)
    square(labels, 20, 20, 6, 255)
    square(labels, 20, 2, 6, 1)
    fixed = fix(labels, "split_label")
    assert fixed.dtype == np.uint16
    assert set(np.unique(fixed)) == {0, 1, 255, 256}


def test_split_fix_respects_links() -> None:
    labels = np.zeros((20, 30), dtype=np.uint16)
    square(labels, 2, 2, 5, 5)
    labels[2:7, 7:23] = 6
    square(labels, 2, 23, 5, 5)
    np.testing.assert_array_equal(fix(labels, "split_label", links={(5, 6)}), labels)
    assert len(np.unique(fix(labels, "split_label"))) == 4


def test_semantic_fix_relabels_connected_components() -> None:
    mask = np.zeros((30, 30), dtype=np.uint8)
    for y, x in ((2, 2), (2, 18), (18, 10)):
        square(mask, y, x, 6, 255)
    fixed = fix(mask, "semantic_mask")
    assert set(np.unique(fixed)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(fixed > 0, mask > 0)
    assert run_qc(fixed).problems == []


def test_semantic_fix_leaves_a_label_matrix_alone() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    square(labels, 12, 12, 5, 1)
    np.testing.assert_array_equal(fix(labels, "semantic_mask"), labels)


def test_float_fix_casts_whole_numbers_to_integers() -> None:
    labels = np.zeros((10, 10), dtype=np.float64)
    square(labels, 2, 2, 5, 3)
    fixed = fix(labels, "float_mask")
    assert fixed.dtype == np.uint16
    np.testing.assert_array_equal(fixed, labels)


def test_float_fix_refuses_probabilities_and_other_fixes_refuse_floats() -> None:
    with pytest.raises(ValueError, match="cannot be cast"):
        fix(np.full((5, 5), 0.5), "float_mask")
    with pytest.raises(ValueError, match="float_mask"):
        fix(np.zeros((5, 5)), "gap")


def test_fix_returns_a_new_array_even_when_nothing_changes() -> None:
    labels = np.zeros((10, 10), dtype=np.uint16)
    square(labels, 2, 2, 5, 1)
    for check in FIX_ORDER:
        fixed = fix(labels, check)
        np.testing.assert_array_equal(fixed, labels)
        assert not np.shares_memory(fixed, labels)


def test_fix_all_repairs_every_fixable_problem() -> None:
    labels = np.zeros((30, 40), dtype=np.float32)
    labels[2:14, 2:10] = 1
    labels[2:14, 12:20] = 2  # 2-px seam
    square(labels, 20, 2, 6, 2)  # label 2 split
    labels[25, 30] = 3  # fragment
    fixed, links = fix_all(labels)
    assert fixed.dtype.kind == "u"
    assert checks(fixed) == {"non_consecutive"}  # ids 1, 2 and 4 (the split part)
    assert links == set()


def test_fix_all_keeps_the_links_whose_labels_still_exist() -> None:
    labels = np.zeros((30, 40), dtype=np.uint16)
    labels[2:14, 2:10] = 1
    labels[2:14, 10:20] = 2  # touches label 1: (1, 2) is a valid link
    labels[25, 30] = 3  # a fragment, linked to the cell 4
    square(labels, 20, 2, 6, 4)
    fixed, links = fix_all(labels, links={(1, 2), (3, 4)})
    assert not (fixed == 3).any()
    assert links == {(1, 2)}


def test_fix_all_drops_links_after_relabelling_a_semantic_mask() -> None:
    mask = np.zeros((30, 30), dtype=np.uint8)
    for y, x in ((2, 2), (2, 18), (18, 10)):
        square(mask, y, x, 6, 1)
    fixed, links = fix_all(mask, links={(1, 2)})
    assert links == set()
    assert set(np.unique(fixed)) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "labels", [np.zeros((2, 5, 5), dtype=np.uint16), -np.ones((5, 5), dtype=np.int32)]
)
def test_fix_refuses_labels_that_are_not_a_2d_label_matrix(labels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        fix(labels, "gap")
