"""``Problem`` and ``QCReport``: blocking, counts, JSON and the human summary."""

from __future__ import annotations

import json

import numpy as np

from napari_cellseg.qc import Problem, QCReport, run_qc


def sample_report() -> QCReport:
    labels = np.zeros((30, 40), dtype=np.uint16)
    for i in range(5):
        labels[0:4, 8 * i : 8 * i + 4] = i + 1  # five border cells
    labels[10:15, 10:15] = 9
    labels[20:25, 20:25] = 9  # split, and ids are not consecutive
    return run_qc(labels, border=True, source="a.tif")


def test_counts_and_blocking() -> None:
    report = sample_report()
    assert report.blocking
    assert report.counts() == {"split_label": 1, "border": 5, "non_consecutive": 1}
    assert list(report.counts()) == ["split_label", "border", "non_consecutive"]
    assert report.n_labels == 6


def test_report_without_blocking_problem() -> None:
    info = Problem("border", "info", "label 1 touches the border", (1,), (0, 0, 2, 2))
    report = QCReport([info], (5, 5), 1)
    assert not report.blocking
    assert report.counts() == {"border": 1}


def test_to_dict_is_json_safe() -> None:
    data = json.loads(json.dumps(sample_report().to_dict()))
    assert data["source"] == "a.tif"
    assert data["shape"] == [30, 40]
    assert data["blocking"] is True
    assert data["counts"]["border"] == 5
    split = data["problems"][0]
    assert split == {
        "check": "split_label",
        "severity": "blocking",
        "message": split["message"],
        "labels": [9],
        "bbox": [10, 10, 25, 25],
        "fixable": True,
    }
    assert data["problems"][-1]["bbox"] is None


def test_to_dict_converts_numpy_integers() -> None:
    problem = Problem("gap", "warning", "m", (np.int64(1), np.int32(2)), (np.int64(0),) * 4)
    assert json.dumps(problem.to_dict())


def test_summary_lists_each_check_and_truncates_long_lists() -> None:
    text = sample_report().summary(max_per_check=2)
    lines = text.splitlines()
    assert lines[0] == "a.tif: 6 labels, 30x40: BLOCKING problems"
    assert "  [blocking] split_label: 1" in lines
    assert "  [info] border: 5" in lines
    assert "    ... and 3 more" in lines
    assert lines.index("  [blocking] split_label: 1") < lines.index("  [info] border: 5")


def test_summary_of_a_clean_mask() -> None:
    assert QCReport([], (4, 5), 2, "b").summary() == "b: 2 labels, 4x5: no problems"
