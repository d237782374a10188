"""``cellseg evaluate`` end to end on temporary folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.cli import main


def _squares(ids: list[int]) -> np.ndarray:
    out = np.zeros((8, 6 * len(ids)), dtype=np.uint16)
    for k, lab in enumerate(ids):
        out[2:6, 6 * k : 6 * k + 4] = lab
    return out


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    # a: perfect; b: 3 gt, 2 found + 1 false positive -> AP50 = 2/4
    tifffile.imwrite(gt / "a_masks.tif", _squares([1, 2]))
    tifffile.imwrite(pred / "a_masks.tif", _squares([2, 1]))
    tifffile.imwrite(gt / "b_masks.tif", _squares([1, 2, 3, 0]))
    tifffile.imwrite(pred / "b_masks.tif", _squares([4, 5, 0, 6]))
    tifffile.imwrite(gt / "b.tif", np.zeros((8, 24), np.uint16))  # an image, not a mask
    tifffile.imwrite(gt / "c_masks.tif", _squares([1]))  # no prediction
    tifffile.imwrite(pred / "d_masks.tif", _squares([1]))  # no ground truth
    return pred, gt


def test_prints_a_table_per_image_and_the_mean(folders, capsys):
    pred, gt = folders
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["image", "n_gt", "n_pred", "AP50", "AP75"]
    row_b = next(line for line in lines if line.startswith("b "))
    assert row_b.split()[1:4] == ["3", "3", "0.500"]
    mean = next(line for line in lines if line.startswith("mean of 2"))
    assert mean.split()[5] == "0.750"  # AP50: (1 + 0.5) / 2
    assert "pooled" in out
    assert "c_masks.tif" in err and "d_masks.tif" in err  # unmatched files are listed


def test_json_gives_summary_rows_and_unmatched_files(folders, capsys):
    pred, gt = folders
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["n_images"] == 2
    assert report["summary"]["ap_50"] == pytest.approx(0.75)
    assert report["summary"]["pooled_ap_50"] == pytest.approx(4 / 6)
    rows = {r["name"]: r for r in report["images"]}
    assert rows["a"]["map"] == 1.0
    assert (rows["b"]["tp"], rows["b"]["fp"], rows["b"]["fn"]) == (2, 1, 1)
    assert [Path(p).name for p in report["unmatched"]["gt"]] == ["c_masks.tif"]
    assert [Path(p).name for p in report["unmatched"]["pred"]] == ["d_masks.tif"]


def test_csv_holds_one_row_per_image(folders, tmp_path, capsys):
    pred, gt = folders
    out = tmp_path / "scores.csv"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--csv", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == ["a", "b"]
    assert float(rows[1]["ap_50"]) == pytest.approx(0.5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_predictions_without_suffix_pair_with_an_empty_filter(folders, tmp_path, capsys):
    _, gt = folders
    plain = tmp_path / "plain"
    plain.mkdir()
    tifffile.imwrite(plain / "a.tif", _squares([1, 2]))
    args = ["evaluate", "--pred", str(plain), "--gt", str(gt), "--json", "--pred_filter", ""]
    assert main(args) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["images"]] == ["a"]


def test_nothing_pairing_is_an_error_that_names_the_folders(folders, tmp_path, capsys):
    _, gt = folders
    other = tmp_path / "other"
    other.mkdir()
    tifffile.imwrite(other / "zzz_masks.tif", _squares([1]))
    assert main(["evaluate", "--pred", str(other), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert "no predicted mask" in err and str(other) in err and "--pred_filter" in err
    assert "Traceback" not in err


def test_shape_mismatch_names_both_files(folders, capsys):
    pred, gt = folders
    tifffile.imwrite(pred / "a_masks.tif", np.zeros((5, 5), np.uint16))
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert str(pred / "a_masks.tif") in err and str(gt / "a_masks.tif") in err


def test_missing_folder_is_reported(tmp_path, capsys):
    assert main(["evaluate", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_stacks_are_scored_frame_by_frame(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    frames = np.stack([_squares([1, 2]), _squares([1, 0])])
    tifffile.imwrite(tmp_path / "gt" / "s_masks.tif", frames)
    tifffile.imwrite(tmp_path / "pred" / "s_masks.tif", frames[::-1])
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)["images"]
    assert [(r["name"], r["n_gt"], r["n_pred"]) for r in rows] == [("s[0]", 2, 1), ("s[1]", 1, 2)]


# --------------------------------------------------------------------------------------------
# --tracking: Cell Tracking Challenge scores of a result folder


@pytest.fixture
def tracking(tmp_path: Path) -> tuple[Path, Path]:
    """A ground truth 01_GT (TRA and one SEG frame) of two cells over 4 frames, and a result
    01_RES that swaps them from frame 2 on (hand-computed AOGM: ED 2 + 1.5 * EA 2 = 5 of
    AOGM_0 = 10 * 8 cells + 1.5 * 6 edges = 89)."""
    pytest.importorskip("ctc_metrics")
    from napari_cellseg.track.ctc import Track, write_tracks
    from napari_cellseg.track.folders import write_result

    gt_labels = np.zeros((4, 12, 24), np.uint16)
    gt_labels[:, 2:6, 2:6] = 1
    gt_labels[:, 2:6, 14:18] = 2
    tracks = [Track(1, 0, 3, 0), Track(2, 0, 3, 0)]
    tra = tmp_path / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    for t, frame in enumerate(gt_labels):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", frame)
    write_tracks(tra / "man_track.txt", tracks)
    (tmp_path / "01_GT" / "SEG").mkdir()
    seg = gt_labels[0].copy()
    seg[2:6, 6:8] = 1  # the left cell is 4 x 6 in the segmentation: IoU 16 / 24 with the result
    tifffile.imwrite(tmp_path / "01_GT" / "SEG" / "man_seg000.tif", seg)
    res = gt_labels.copy()
    res[2:][gt_labels[2:] == 1] = 2
    res[2:][gt_labels[2:] == 2] = 1
    write_result(tmp_path / "01_RES", res, tracks)
    return tmp_path / "01_RES", tmp_path / "01_GT"


def test_tracking_prints_det_seg_tra(tracking, capsys):
    res, gt = tracking
    assert main(["evaluate", "--tracking", str(res), "--gt", str(gt)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["DET"][1] == "1.0000"
    assert lines["SEG"][1] == f"{(1 + 16 / 24) / 2:.4f}"
    assert lines["TRA"][1] == f"{1 - 5 / 89:.4f}"
    assert lines["AOGM"][1] == "5" and "89" in out and "ED 2" in out and "EA 2" in out


def test_tracking_json_and_csv(tracking, tmp_path, capsys):
    res, gt = tracking
    out_csv = tmp_path / "tracking.csv"
    args = ["evaluate", "--tracking", str(res), "--gt", str(gt), "--json", "--csv", str(out_csv)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scores"]["TRA"] == pytest.approx(1 - 5 / 89)
    assert report["scores"]["AOGM_ED"] == 2 and report["skipped"] == {}
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and float(rows[0]["TRA"]) == pytest.approx(1 - 5 / 89)
    assert float(rows[0]["AOGM"]) == 5.0
    assert main(args) == 2  # the CSV exists now
    assert "already exists" in capsys.readouterr().err


def test_tracking_without_seg_says_why(tracking, capsys):
    res, gt = tracking
    assert main(["evaluate", "--tracking", str(res), "--gt", str(gt / "TRA")]) == 0
    out = capsys.readouterr().out
    assert "SEG  skipped:" in out and "TRA folder" in out


def test_tracking_bad_folders_exit_2(tracking, tmp_path, capsys):
    res, gt = tracking
    assert main(["evaluate", "--tracking", str(tmp_path / "nope"), "--gt", str(gt)]) == 2
    assert "--tracking" in capsys.readouterr().err
    (res / "res_track.txt").write_text("1 0 3 0\n")
    assert main(["evaluate", "--tracking", str(res), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert "id 2 is in the labels but it is not in the track table" in err
    assert "Traceback" not in err


def test_pred_and_tracking_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--pred", str(tmp_path), "--tracking", str(tmp_path), "--gt", "x"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["evaluate", "--gt", str(tmp_path)])
    assert "one of the arguments --pred --tracking is required" in capsys.readouterr().err
