"""CTC DET / SEG / TRA through py-ctcmetrics (napari_cellseg.track.scores).

The toy cases' AOGM is worked out by hand with the CTC weights NS 5, FN 10, FP 1, ED 1,
EA 1.5, EC 1; ``AOGM_0 = 10 * vertices + 1.5 * edges`` (building the ground truth from nothing),
``TRA = 1 - AOGM / AOGM_0`` and ``DET = 1 - (5 NS + 10 FN + FP) / (10 * vertices)``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.errors import CellsegError
from napari_cellseg.metrics import tracking_scores
from napari_cellseg.track.ctc import Track, read_tracks, write_tracks
from napari_cellseg.track.folders import write_result
from napari_cellseg.track.scores import CTCScores, ctc_scores, ctc_scores_arrays

pytest.importorskip("ctc_metrics")

# Division ground truth: mother 1 (frames 0-1) -> daughters 2 and 3 (frames 2-3).
# Vertices 1 + 1 + 2 + 2 = 6; edges: 1 (track 1) + 1 + 1 (tracks 2, 3) + 2 (division) = 5;
# AOGM_0 = 10 * 6 + 1.5 * 5 = 67.5.
DIVISION = [Track(1, 0, 1, 0), Track(2, 2, 3, 1), Track(3, 2, 3, 1)]


def division() -> np.ndarray:
    gt = np.zeros((4, 12, 24), np.int32)
    gt[0:2, 2:6, 8:16] = 1
    gt[2:4, 2:6, 4:8] = 2
    gt[2:4, 2:6, 14:18] = 3
    return gt


# Two cells, left (1) and right (2), frames 0-3: 8 vertices, 6 edges; AOGM_0 = 80 + 9 = 89.
PAIR = [Track(1, 0, 3, 0), Track(2, 0, 3, 0)]


def pair() -> np.ndarray:
    gt = np.zeros((4, 12, 24), np.int32)
    gt[:, 2:6, 2:6] = 1
    gt[:, 2:6, 14:18] = 2
    return gt


# One cell (a 4 x 8 bar), frames 0-2: 3 vertices, 2 edges; AOGM_0 = 30 + 3 = 33.
SINGLE = [Track(1, 0, 2, 0)]


def single() -> np.ndarray:
    gt = np.zeros((3, 12, 24), np.int32)
    gt[:, 2:6, 4:12] = 1
    return gt


def ops(scores: dict) -> dict[str, int]:
    return {op: int(scores[f"AOGM_{op}"]) for op in ("NS", "FN", "FP", "ED", "EA", "EC")}


def test_a_perfect_result_scores_1():
    gt = division()
    res = gt * 7  # other ids, same cells
    res_tracks = [Track(7, 0, 1, 0), Track(14, 2, 3, 7), Track(21, 2, 3, 7)]
    scores = ctc_scores_arrays(res, res_tracks, gt, DIVISION, gt_seg=gt)
    assert isinstance(scores, CTCScores) and scores.skipped == {}
    assert (scores["DET"], scores["SEG"], scores["TRA"]) == (1.0, 1.0, 1.0)
    assert (scores["AOGM"], scores["AOGM_0"]) == (0.0, 67.5)
    assert set(ops(scores).values()) == {0}


def test_a_missed_division_where_a_daughter_continues_the_mother():
    # Result: 1 runs over frames 0-3 (into daughter 2), 3 starts anew in frame 2.
    # Cells all match. 1@1 -> 2@2 is a track link where the truth has a division: EC 1;
    # the division edge 1@1 -> 3@2 is missing: EA 1. AOGM = 1.5 + 1 = 2.5.
    gt = division()
    res = gt.copy()
    res[res == 2] = 1
    scores = ctc_scores_arrays(res, [Track(1, 0, 3, 0), Track(3, 2, 3, 0)], gt, DIVISION)
    assert ops(scores) == {"NS": 0, "FN": 0, "FP": 0, "ED": 0, "EA": 1, "EC": 1}
    assert scores["AOGM"] == 2.5 and scores["AOGM_0"] == 67.5
    assert scores["TRA"] == pytest.approx(1 - 2.5 / 67.5)
    assert scores["DET"] == 1.0
    assert "SEG" not in scores and "gt_seg" in scores.skipped["SEG"]


def test_a_missed_division_where_the_daughters_are_one_cell():
    # Result: one cell 1 in frames 0-3 covering both daughters in frames 2 and 3. Each of those
    # result cells matches two markers: NS 2 (one split each). Their edges are not counted, so
    # only 1@0 -> 1@1 of the 5 true edges is found: EA 4. AOGM = 5 * 2 + 1.5 * 4 = 16.
    gt = division()
    res = gt.copy()
    res[2:, 2:6, 4:18] = 1
    scores = ctc_scores_arrays(res, [Track(1, 0, 3, 0)], gt, DIVISION)
    assert ops(scores) == {"NS": 2, "FN": 0, "FP": 0, "ED": 0, "EA": 4, "EC": 0}
    assert scores["AOGM"] == 16.0
    assert scores["TRA"] == pytest.approx(1 - 16 / 67.5)
    assert scores["DET"] == pytest.approx(1 - 10 / 60)


def test_a_wrong_link_swapping_two_tracks():
    # Result: from frame 2 on, track 1 is the right cell and track 2 the left one. Cells all
    # match; 1@1 -> 1@2 and 2@1 -> 2@2 join the wrong cells: ED 2, and the two true links
    # between frames 1 and 2 are missing: EA 2. AOGM = 2 + 3 = 5.
    gt = pair()
    res = gt.copy()
    res[2:][gt[2:] == 1] = 2
    res[2:][gt[2:] == 2] = 1
    scores = ctc_scores_arrays(res, PAIR, gt, PAIR)
    assert ops(scores) == {"NS": 0, "FN": 0, "FP": 0, "ED": 2, "EA": 2, "EC": 0}
    assert (scores["AOGM"], scores["AOGM_0"]) == (5.0, 89.0)
    assert scores["TRA"] == pytest.approx(1 - 5 / 89)
    assert scores["DET"] == 1.0


def test_a_cell_split_in_two_halves():
    # Frame 1: the cell is segmented as two halves (1 and 2), each covering exactly half of
    # it, so neither matches: FN 1, FP 2; both true edges touch the missed cell: EA 2.
    # AOGM = 10 + 2 + 3 = 15; DET = 1 - 12 / 30.
    gt = single()
    res = gt.copy()
    res[1, 2:6, 8:12] = 2
    scores = ctc_scores_arrays(res, [Track(1, 0, 2, 0), Track(2, 1, 1, 0)], gt, SINGLE)
    assert ops(scores) == {"NS": 0, "FN": 1, "FP": 2, "ED": 0, "EA": 2, "EC": 0}
    assert (scores["AOGM"], scores["AOGM_0"]) == (15.0, 33.0)
    assert scores["TRA"] == pytest.approx(1 - 15 / 33)
    assert scores["DET"] == pytest.approx(1 - 12 / 30)


def test_a_cell_split_unevenly_keeps_its_match():
    # Frame 1: 1 keeps 6 of the 8 columns (75 % of the cell: it still matches), 2 takes the
    # other 2: FP 1 only. AOGM 1; DET = 1 - 1/30; SEG: IoU 0.75 in frame 1, 1 elsewhere.
    gt = single()
    res = gt.copy()
    res[1, 2:6, 10:12] = 2
    res_tracks = [Track(1, 0, 2, 0), Track(2, 1, 1, 0)]
    scores = ctc_scores_arrays(res, res_tracks, gt, SINGLE, gt_seg=gt)
    assert ops(scores) == {"NS": 0, "FN": 0, "FP": 1, "ED": 0, "EA": 0, "EC": 0}
    assert scores["TRA"] == pytest.approx(1 - 1 / 33)
    assert scores["DET"] == pytest.approx(1 - 1 / 30)
    assert scores["SEG"] == pytest.approx((1 + 0.75 + 1) / 3)
    sparse = ctc_scores_arrays(res, res_tracks, gt, SINGLE, gt_seg={1: gt[1]}, metrics=["SEG"])
    assert dict(sparse) == {"SEG": pytest.approx(0.75)}


def test_an_empty_result_scores_0_with_every_cell_and_edge_missing():
    gt = division()
    scores = ctc_scores_arrays(np.zeros_like(gt), [], gt, DIVISION, gt_seg=gt)
    assert (scores["DET"], scores["SEG"], scores["TRA"]) == (0.0, 0.0, 0.0)
    assert scores["AOGM"] == scores["AOGM_0"] == 67.5
    assert ops(scores) == {"NS": 0, "FN": 6, "FP": 0, "ED": 0, "EA": 5, "EC": 0}


def test_large_result_ids_are_renumbered_for_py_ctcmetrics(tmp_path):
    gt = division()
    res = np.where(gt > 0, gt + 65_000, 0)
    res_tracks = [
        Track(t.id + 65_000, t.begin, t.end, t.parent + 65_000 * bool(t.parent)) for t in DIVISION
    ]
    scores = ctc_scores_arrays(res, res_tracks, gt, DIVISION)
    assert (scores["DET"], scores["TRA"]) == (1.0, 1.0)


# --------------------------------------------------------------------------------------------
# folders


def write_gt(root: Path, labels: np.ndarray, tracks: list[Track], seg: dict | None = None) -> Path:
    tra = root / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    for t, frame in enumerate(labels):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", frame.astype(np.uint16))
    write_tracks(tra / "man_track.txt", tracks)
    for t, frame in (seg or {}).items():
        (root / "01_GT" / "SEG").mkdir(exist_ok=True)
        tifffile.imwrite(root / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", frame.astype(np.uint16))
    return root / "01_GT"


def test_folders_are_scored_and_seg_skipped_without_a_seg_folder(tmp_path):
    gt = write_gt(tmp_path, pair(), PAIR)
    res = pair()
    res[2:][pair()[2:] == 1] = 2
    res[2:][pair()[2:] == 2] = 1
    write_result(tmp_path / "01_RES", res, PAIR)
    scores = ctc_scores(tmp_path / "01_RES", gt)
    assert scores["TRA"] == pytest.approx(1 - 5 / 89) and scores["DET"] == 1.0
    assert "SEG" not in scores and "no segmentation ground truth" in scores.skipped["SEG"]
    assert dict(tracking_scores(tmp_path / "01_RES", gt)) == dict(scores)
    only = ctc_scores(tmp_path / "01_RES", gt / "TRA", metrics=("DET",))
    assert dict(only) == {"DET": 1.0}


def test_folders_with_seg(tmp_path):
    gt = single()
    folder = write_gt(tmp_path, gt, SINGLE, seg={1: gt[1]})
    res = gt.copy()
    res[1, 2:6, 10:12] = 2
    write_result(tmp_path / "01_RES", res, [Track(1, 0, 2, 0), Track(2, 1, 1, 0)])
    scores = ctc_scores(tmp_path / "01_RES", folder)
    assert scores["SEG"] == pytest.approx(0.75) and scores.skipped == {}
    assert scores["TRA"] == pytest.approx(32 / 33)
    tra_only = ctc_scores(tmp_path / "01_RES", folder / "TRA")
    assert "TRA folder" in tra_only.skipped["SEG"]


def test_bad_folders_are_clear_errors(tmp_path):
    gt = write_gt(tmp_path, pair(), PAIR)
    write_result(tmp_path / "short", pair()[:3], [Track(1, 0, 2, 0), Track(2, 0, 2, 0)])
    with pytest.raises(CellsegError, match="has 3 frames but the ground truth .* has 4"):
        ctc_scores(tmp_path / "short", gt)
    write_result(tmp_path / "small", pair()[:, :, :20], PAIR)
    with pytest.raises(CellsegError, match=r"mask000.tif has shape \(12, 20\)"):
        ctc_scores(tmp_path / "small", gt)
    broken = tmp_path / "broken"
    write_result(broken, pair(), PAIR)
    (broken / "res_track.txt").write_text("1 0 3 0\n2 0 2 0\n")
    with pytest.raises(CellsegError, match=r"mask003.tif\): id 2 is in the labels"):
        ctc_scores(broken, gt)
    (broken / "res_track.txt").unlink()
    with pytest.raises(CellsegError, match="no such track table"):
        ctc_scores(broken, gt)
    with pytest.raises(CellsegError, match="no such folder"):
        ctc_scores(tmp_path / "nope", gt)
    with pytest.raises(CellsegError, match="no tracking ground truth"):
        ctc_scores(tmp_path / "small", tmp_path)
    with pytest.raises(CellsegError, match="choose among DET, SEG, TRA"):
        ctc_scores(tmp_path / "small", gt, metrics=("MOTA",))


def test_without_py_ctcmetrics_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctc_metrics.scripts", None)
    with pytest.raises(CellsegError, match=r"install napari-cellseg\[track\]"):
        ctc_scores(tmp_path, tmp_path)


def test_gowt1_ground_truth_against_itself_scores_1(shared_data, tmp_path):
    source = shared_data / "tracking" / "Fluo-N2DH-GOWT1" / "01_GT"
    if not (source / "TRA").is_dir():
        pytest.skip(f"no GOWT1 tracking ground truth at {source}")
    n = 10  # the first frames only, to keep it fast
    gt, res = tmp_path / "01_GT", tmp_path / "01_RES"
    (gt / "TRA").mkdir(parents=True)
    (gt / "SEG").mkdir()
    res.mkdir()
    for t in range(n):
        shutil.copyfile(
            source / "TRA" / f"man_track{t:03d}.tif", gt / "TRA" / f"man_track{t:03d}.tif"
        )
        shutil.copyfile(source / "TRA" / f"man_track{t:03d}.tif", res / f"mask{t:03d}.tif")
        if (source / "SEG" / f"man_seg{t:03d}.tif").is_file():
            shutil.copyfile(
                source / "SEG" / f"man_seg{t:03d}.tif", gt / "SEG" / f"man_seg{t:03d}.tif"
            )
    tracks = [
        Track(t.id, t.begin, min(t.end, n - 1), t.parent)
        for t in read_tracks(source / "TRA" / "man_track.txt")
        if t.begin < n
    ]
    write_tracks(gt / "TRA" / "man_track.txt", tracks)
    write_tracks(res / "res_track.txt", tracks)
    scores = ctc_scores(res, gt)
    assert (scores["DET"], scores["TRA"], scores["AOGM"]) == (1.0, 1.0, 0.0)
    assert scores["AOGM_0"] > 0
    # the TRA markers are smaller than the SEG outlines, but cover more than half of each
    assert 0.5 < scores["SEG"] < 1.0
