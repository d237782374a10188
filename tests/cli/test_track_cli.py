"""``cellseg make-tracking-set``, ``train --architecture track``, ``track`` and
``evaluate --tracking`` end to end on a synthetic CTC sequence."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg import synth
from napari_cellseg.cli import main
from napari_cellseg.track import ctc, folders


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> Path:
    """A CTC tree ``<root>/01`` + ``<root>/01_GT/TRA`` of a dividing synthetic colony."""
    root = tmp_path_factory.mktemp("ctc")
    movie = synth.timelapse("nuclei", n_frames=8, shape=(96, 96), n_cells=4, seed=1, cycle=5)
    folders.write_sequence(root, movie.images, movie.labels, movie.tracks)
    return root


def test_make_tracking_set_writes_six_folders_of_windows(sequence, tmp_path, capsys):
    out = tmp_path / "set"
    assert (
        main(["make-tracking-set", str(sequence / "01"), "--out", str(out), "--tyx", "32,32"]) == 0
    )
    assert "tracking samples" in capsys.readouterr().out
    seq = folders.read_sequence(sequence / "01")
    n_samples = sum(len(np.unique(f)) - 1 for f in seq.labels[:-1])
    for folder in ("previmg", "seg", "img", "segall", "mot_dau", "wei"):
        files = sorted((out / folder).iterdir())
        assert len(files) == n_samples, folder
    seed = tifffile.imread(sorted((out / "seg").iterdir())[0])
    assert seed.shape == (32, 32) and set(np.unique(seed)) == {0, 255}
    # the weights are DeLTA's of the written masks
    from napari_cellseg.track.weights import tracking_weights

    stem = sorted((out / "mot_dau").iterdir())[0].name
    w = tifffile.imread(out / "wei" / stem)
    expected = tracking_weights(
        tifffile.imread(out / "mot_dau" / stem), tifffile.imread(out / "segall" / stem)
    )
    np.testing.assert_allclose(w, expected)
    # nothing is replaced without --overwrite
    assert main(["make-tracking-set", str(sequence / "01"), "--out", str(out)]) == 2
    assert "already exist" in capsys.readouterr().err


def test_laptrack_tracks_and_scores_a_sequence(sequence, tmp_path, capsys):
    res = tmp_path / "01_RES"
    args = ["track", "--method", "laptrack", "--labels", str(sequence / "01_GT" / "TRA")]
    assert main([*args, "--out", str(res)]) == 0
    assert (res / "res_track.txt").exists() and (res / "mask000.tif").exists()
    rows = list(csv.DictReader((res / "lineage.csv").open()))
    assert {"id", "frame", "mother", "daughters", "area"} <= set(rows[0])
    capsys.readouterr()
    assert main(["evaluate", "--tracking", str(res), "--gt", str(sequence / "01_GT")]) == 0
    out = capsys.readouterr().out
    tra = float(out.split("TRA")[1].split()[0])
    assert tra > 0.9
    assert main([*args, "--out", str(res)]) == 2  # an earlier result is kept
    assert "already exist" in capsys.readouterr().err


def test_a_track_model_trains_on_the_sequence_and_tracks_it(sequence, tmp_path, capsys):
    model = tmp_path / "track.pt"
    train = [
        "train",
        "--architecture",
        "track",
        "--dir",
        str(sequence / "01"),
        "--tyx",
        "48,48",
        "--nbase",
        "8,16,32",
        "--batch_size",
        "8",
        "--n_epochs",
        "2",
        "--model",
        str(model),
    ]
    assert main(train) == 0
    res = tmp_path / "res"
    assert (
        main(
            [
                "track",
                "--model",
                str(model),
                "--images",
                str(sequence / "01"),
                "--labels",
                str(sequence / "01_GT" / "TRA"),
                "--out",
                str(res),
                "--save_cells",
            ]
        )
        == 0
    )
    result = folders.read_sequence(res, images=False)
    assert result.labels.shape == (8, 96, 96)
    cells = list((res / "cells").iterdir())
    assert cells and all("Cell" in p.name for p in cells)
    # a segmentation model is refused where a tracking model is needed, and the reverse
    assert main(["predict", "--model", str(model), "--dir", str(sequence / "01")]) == 2
    assert "tracking model" in capsys.readouterr().err


def test_bad_track_input_gets_a_clear_message(sequence, tmp_path, capsys):
    frame = tmp_path / "one.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint16))
    assert (
        main(
            ["track", "--method", "laptrack", "--labels", str(frame), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "time-lapse" in capsys.readouterr().err
    assert main(["track", "--labels", str(frame), "--out", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_tracking_demo_trains_tracks_and_scores(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--track",
                "--kind",
                "nuclei",
                "--minutes",
                "0.2",
                "--epochs",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("tracking model"))
    ours, laptrack = (float(part.split()[0]) for part in line.split("TRA ")[1:3])
    assert 0 < ours <= 1 and laptrack > 0.9
    result = folders.read_sequence(out / "test" / "01_RES", images=False)
    assert result.labels.shape == (20, 256, 256)
    assert (out / "models" / "demo_track.pt").exists()


def test_a_segmentation_model_segments_every_frame_before_tracking(sequence, tmp_path):
    from helpers import TINY_TRAIN_OPTIONS

    synth.make_dataset(tmp_path / "train", kind="nuclei", n=2, shape=(64, 64), seed=0)
    seg_model = tmp_path / "seg.pt"
    train = ["train", "--dir", str(tmp_path / "train"), "--model", str(seg_model)]
    assert main([*train, *TINY_TRAIN_OPTIONS, "--n_epochs", "1"]) == 0
    res = tmp_path / "res"
    argv = ["track", "--method", "laptrack", "--images", str(sequence / "01")]
    assert main([*argv, "--seg_model", str(seg_model), "--out", str(res)]) == 0
    result = folders.read_sequence(res, images=False)
    assert result.labels.shape == (8, 96, 96)
    ctc.check_tracks(result.labels, result.tracks, "result")
