"""``cellseg train``, ``predict``, ``evaluate``, ``make-weights`` and ``demo`` end to end.

Everything runs in-process through :func:`napari_cellseg.cli.main` on tiny synthetic folders:
one model is trained for two epochs and shared by the prediction tests.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from helpers import nuclei_folders, tiny_train_argv
from napari_cellseg import synth
from napari_cellseg.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny omni model trained for 2 epochs by ``cellseg train``, with its logs beside it."""
    root = tmp_path_factory.mktemp("trained")
    train_dir, val_dir = nuclei_folders(root, val_seed=3)
    options = ["--n_epochs", "2", "--tb_dir", str(root / "tb"), "--csv_log", str(root / "log.csv")]
    options += ["--seed", "1", "--test_dir", str(val_dir), "--evaluate"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(tiny_train_argv(train_dir, root / "models" / "tiny.pt", *options))
    assert code == 0
    (root / "stdout.txt").write_text(out.getvalue())
    return root


@pytest.fixture
def images(tmp_path) -> Path:
    """Two images (and their true masks) of a size the model was not trained on."""
    synth.make_dataset(tmp_path / "images", kind="nuclei", n=2, shape=(72, 88), seed=5)
    return tmp_path / "images"


def test_train_writes_the_model_its_yaml_tensorboard_events_and_a_csv_log(trained):
    model = trained / "models" / "tiny.pt"
    assert model.is_file() and (trained / "models" / "tiny.yaml").is_file()
    with open(trained / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r["loss"])) and float(r["loss"]) > 0 for r in rows)
    assert all(math.isfinite(float(r["val_loss"])) for r in rows)
    events = list((trained / "tb").rglob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    scalars = acc.Scalars("loss/train")
    assert [s.step for s in scalars] == [1, 2]
    assert [s.value for s in scalars] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-5)


def test_predict_writes_integer_masks_of_each_image_shape(trained, images, tmp_path, capsys):
    out = tmp_path / "out"
    model = trained / "models" / "tiny.pt"
    assert main(["predict", "--model", str(model), "--dir", str(images), "--output", str(out)]) == 0
    assert f"wrote 2 mask file(s) to {out}" in capsys.readouterr().out
    for i in range(2):
        masks = tifffile.imread(out / f"nuclei_{i:03d}_masks.tif")
        assert masks.shape == (72, 88)
        assert np.issubdtype(masks.dtype, np.integer) and masks.min() >= 0
    assert sorted(p.name for p in out.iterdir()) == ["nuclei_000_masks.tif", "nuclei_001_masks.tif"]


def test_predict_takes_the_yaml_beside_the_model(trained, images, tmp_path):
    models = trained / "models"
    for name in ("tiny.pt", "tiny.yaml"):
        argv = ["predict", "--model", str(models / name), "--dir", str(images)]
        assert main([*argv, "--output", str(tmp_path / name)]) == 0
    # CLB style: the model's yaml as --config
    argv = ["predict", "--config", str(models / "tiny.yaml"), "--dir", str(images)]
    assert main([*argv, "--output", str(tmp_path / "config")]) == 0
    for out in ("tiny.yaml", "config"):
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / "tiny.pt" / "nuclei_001_masks.tif"),
            tifffile.imread(tmp_path / out / "nuclei_001_masks.tif"),
        )


def test_predict_writes_outlines_png_and_float_flows(trained, images, tmp_path):
    out = tmp_path / "out"
    argv = ["predict", "--model", str(trained / "models" / "tiny.pt"), "--dir", str(images)]
    assert main([*argv, "--output", str(out), "--save_png", "--save_flows"]) == 0
    with Image.open(out / "nuclei_000_outlines.png") as png:
        assert png.format == "PNG" and png.size == (88, 72)
    flows = tifffile.imread(out / "nuclei_000_flows.tif")
    assert flows.dtype == np.float32
    assert flows.shape == (3, 72, 88)  # omni: flow y, flow x, distance
    assert np.isfinite(flows).all() and flows.std() > 0


def test_predict_refuses_the_input_folder_as_output(trained, images, capsys):
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    argv = ["predict", "--model", str(trained / "models" / "tiny.pt"), "--dir", str(images)]
    assert main([*argv, "--output", str(images)]) == 2
    err = capsys.readouterr().err
    assert f"--output {images.resolve()} is the folder of the input images" in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


def test_predict_checks_every_output_before_writing_any(trained, images, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "nuclei_001_masks.tif").write_bytes(b"the user's own masks")  # only one clashes
    argv = ["predict", "--model", str(trained / "models" / "tiny.pt"), "--dir", str(images)]
    assert main([*argv, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 output file already exists and would be replaced" in err
    assert "nuclei_001_masks.tif" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["nuclei_001_masks.tif"]
    assert (out / "nuclei_001_masks.tif").read_bytes() == b"the user's own masks"
    assert main([*argv, "--output", str(out), "--overwrite"]) == 0
    assert tifffile.imread(out / "nuclei_001_masks.tif").shape == (72, 88)
    assert (out / "nuclei_000_masks.tif").is_file()


def test_evaluate_scores_the_predictions_against_the_truth(trained, images, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["predict", "--model", str(trained / "models" / "tiny.pt"), "--dir", str(images)]
    assert main([*argv, "--output", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--gt", str(images), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["n_images"] == 2
    assert [r["name"] for r in report["images"]] == ["nuclei_000", "nuclei_001"]
    for row in [*report["images"], report["summary"]]:
        aps = [v for k, v in row.items() if k.startswith("ap_")]
        assert len(aps) == 10 and all(0.0 <= v <= 1.0 for v in aps)
    assert all(r["n_gt"] > 0 for r in report["images"])


def _delta_folder(root: Path, n: int = 2) -> list[np.ndarray]:
    """DeLTA layout: img/ (8-bit PNG) and seg/ (binary 0/255 PNG, cells apart), paired by name."""
    (root / "img").mkdir(parents=True)
    (root / "seg").mkdir()
    masks = []
    for i in range(n):
        image, labels = synth.bacteria((64, 80), seed=i)
        grey = np.interp(image, (image.min(), image.max()), (0, 255)).astype(np.uint8)
        Image.fromarray(grey).save(root / "img" / f"Sample{i:02d}.png")
        apart = (labels > 0) & ~find_boundaries(labels, mode="inner")
        seg = np.where(apart, 255, 0).astype(np.uint8)
        Image.fromarray(seg).save(root / "seg" / f"Sample{i:02d}.png")
        masks.append(seg)
    return masks


@pytest.mark.parametrize("weight_map", ["seg_weights", "seg_weights_2D"])
def test_make_weights_writes_a_weight_map_per_mask(tmp_path, capsys, weight_map):
    masks = _delta_folder(tmp_path / "delta")
    assert main(["make-weights", str(tmp_path / "delta"), "--weight_map", weight_map]) == 0
    assert "wrote 2 weight map(s)" in capsys.readouterr().out
    for i, seg in enumerate(masks):
        w = tifffile.imread(tmp_path / "delta" / "wei" / f"Sample{i:02d}.tif")
        assert w.dtype == np.float32 and w.shape == seg.shape
        assert w.min() >= 0 and np.isfinite(w).all()
        gaps = (seg == 0) & ndi.binary_dilation(seg > 0, iterations=2)
        if weight_map == "seg_weights":  # 1 everywhere, up to 1 + w0 between cells
            assert w[gaps].max() > 2 * w[seg > 0].max() == 2
        else:  # cell and gap skeletons weighted, open background left at 0
            assert w[seg > 0].max() > 0.5 and w[gaps].max() > 0.5
            assert np.mean(w[seg == 0] == 0) > 0.3
    assert main(["make-weights", str(tmp_path / "delta"), "--weight_map", weight_map]) == 2
    assert "already exist" in capsys.readouterr().err


def test_demo_without_training_generates_and_checks_data(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--no_train", "--out", str(out), "--n_train", "2", "--n_test", "1"]
    assert main(argv) == 0
    assert "2 masks checked: 0 with blocking problems" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "bacteria_000.tif",
        "bacteria_000_masks.tif",
        "bacteria_001.tif",
        "bacteria_001_masks.tif",
    ]
    masks = tifffile.imread(out / "test" / "bacteria_000_masks.tif")
    assert masks.shape == tifffile.imread(out / "test" / "bacteria_000.tif").shape
    assert masks.max() > 0


def test_demo_writes_outside_the_source_tree_by_default(tmp_path, monkeypatch, capsys):
    from napari_cellseg.cli.demo import default_folder

    source_root = Path(__file__).resolve().parents[2]  # the clone (src/napari_cellseg inside)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_folder(source_root) == tmp_path / "home" / "cellseg-demo"
    assert "holds the napari-cellseg source" in capsys.readouterr().out
    assert default_folder(tmp_path) == tmp_path / "cellseg-demo"


def test_demo_gui_without_napari_says_how_to_install_it(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "napari", None)  # as in a core-only install
    assert main(["demo", "--gui"]) == 2
    assert 'pip install "napari-cellseg[all]"' in capsys.readouterr().err


def test_demo_says_when_its_time_budget_stops_the_training(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--minutes", "0", "--n_train", "2", "--n_test", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # the deadline is checked after each step: the first epoch may or may not have ended
    assert re.search(r"time budget of 0 min reached after [01] of 60 epochs", printed)


def test_a_missing_folder_is_an_error_naming_it(trained, tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    argv = ["predict", "--model", str(trained / "models" / "tiny.pt"), "--dir", str(missing)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err
    assert not missing.exists()


def test_a_missing_model_is_an_error_naming_it(images, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "model.pt"
    argv = ["predict", "--model", str(missing), "--dir", str(images), "--output", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*_masks.tif"))


def test_the_model_and_its_options_are_checked_before_the_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", "nucleii", "--dir", str(empty)]) == 2
    assert "model 'nucleii' not found" in capsys.readouterr().err
    assert main(["predict", "--model", "nuclei", "--threshold", "0.3", "--dir", str(empty)]) == 2
    assert "--threshold do(es) not apply to omni models" in capsys.readouterr().err
    assert list(empty.iterdir()) == []


def test_training_on_a_missing_folder_is_an_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_train_data"
    argv = ["train", "--dir", str(missing), "--n_epochs", "1", "--model", str(tmp_path / "m.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_train_evaluate_scores_the_final_model_on_the_validation_images(trained):
    printed = (trained / "stdout.txt").read_text()
    assert "validation images segmented by tiny.pt" in printed
    (row,) = [line for line in printed.splitlines() if line.startswith("nuclei_000 ")]
    assert len(row.split()) > 3  # name, then the scores
    assert "mean of 1" in printed and "pooled over all objects" in printed


def test_train_evaluate_needs_a_validation_folder(tmp_path, capsys):
    code = main(["train", "--dir", str(tmp_path), "--evaluate"])
    assert code == 2
    assert "--test_dir" in capsys.readouterr().err


def test_predict_goes_on_past_a_corrupt_image_and_lists_it_at_the_end(trained, images, tmp_path):
    (images / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)  # a TIFF header, no image
    argv = ["predict", "--model", str(trained / "models" / "tiny.pt"), "--dir", str(images)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([*argv, "--output", str(tmp_path / "out")])
    assert code == 1
    assert "1 of 3 image(s) failed and have no masks" in err.getvalue()
    assert f"{images / 'broken.tif'}:" in err.getvalue() and "Traceback" not in err.getvalue()
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["nuclei_000_masks.tif", "nuclei_001_masks.tif"]
    assert tifffile.imread(tmp_path / "out" / "nuclei_001_masks.tif").max() >= 0
    # --strict stops at the first failure ("broken" sorts first): nothing is written
    with contextlib.redirect_stderr(io.StringIO()) as strict_err:
        assert main([*argv, "--output", str(tmp_path / "strict"), "--strict"]) == 2
    assert "--strict" in strict_err.getvalue()
    assert not (tmp_path / "strict").exists()


def test_evaluate_csv_is_written_new_or_with_overwrite(trained, images, tmp_path, capsys):
    csv_path = tmp_path / "scores.csv"
    argv = ["evaluate", "--pred", str(images), "--gt", str(images), "--csv", str(csv_path)]
    assert main(argv) == 0
    first = csv_path.read_text()
    assert first.startswith("name,pred,gt,") and first.count("\n") == 3
    csv_path.write_text("my notes\n")
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert csv_path.read_text() == "my notes\n"
    assert main([*argv, "--overwrite"]) == 0
    assert csv_path.read_text() == first


def test_predict_with_the_builtin_nuclei_model_finds_the_nuclei(tmp_path, capsys):
    synth.make_dataset(tmp_path / "nuclei", kind="nuclei", n=2, shape=(160, 160), seed=7)
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--model",
                "nuclei",
                "--dir",
                str(tmp_path / "nuclei"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--gt", str(tmp_path / "nuclei"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for row in report["images"]:
        assert row["n_gt"] >= 3 and abs(row["n_pred"] - row["n_gt"]) <= 1
        assert row["ap_50"] >= 0.9 and row["mean_matched_iou"] >= 0.8


def test_train_resume_on_the_command_line_continues_the_interrupted_run(tmp_path):
    synth.make_dataset(tmp_path / "train", kind="nuclei", n=2, shape=(64, 64), seed=0)
    model = tmp_path / "m.pt"
    base = ["train", "--dir", str(tmp_path / "train"), "--tyx", "64,64", "--batch_size", "2"]
    base += ["--nbase", "8,16", "--seed", "2"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*base, "--n_epochs", "1", "--model", str(model)]) == 0
        first = torch_load_epoch(model)
        with pytest.warns(UserWarning, match="--n_epochs 1 -> 3: the learning-rate schedule"):
            assert main([*base, "--n_epochs", "3", "--resume", str(model)]) == 0
    assert (first, torch_load_epoch(model)) == (1, 3)
    with open(tmp_path / "m.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]


def torch_load_epoch(path: Path) -> int:
    from napari_cellseg.models.checkpoint import load_checkpoint

    return int(load_checkpoint(path).epoch)


def test_demo_runs_the_whole_job_in_its_quick_form(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--epochs", "1", "--n_train", "2", "--n_test", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[4/4] segmenting the held-out images" in printed
    (line,) = [s for s in printed.splitlines() if s.startswith("mean AP@0.5 = ")]
    ap = float(line.split()[3])
    assert 0.0 <= ap <= 1.0
    assert torch_load_epoch(out / "models" / "demo_omni.pt") == 1
    masks = tifffile.imread(out / "predictions" / "bacteria_000_masks.tif")
    assert masks.shape == tifffile.imread(out / "test" / "bacteria_000.tif").shape
    with Image.open(out / "predictions" / "bacteria_000_outlines.png") as png:
        assert png.size == masks.shape[::-1]


@pytest.fixture(scope="module")
def nuclei_dir(tmp_path_factory) -> Path:
    """Two synthetic nuclei images (and masks) in a folder, and two more one level down."""
    root = tmp_path_factory.mktemp("nuclei") / "data"
    synth.make_dataset(root, kind="nuclei", n=2, shape=(128, 128), seed=11)
    synth.make_dataset(root / "sub", kind="nuclei", n=1, shape=(128, 128), seed=12)
    return root


def test_predict_writes_beside_the_input_in_cellseg_masks_by_default(nuclei_dir, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(nuclei_dir, data)
    assert main(["predict", "--model", "nuclei", "--dir", str(data)]) == 0
    assert sorted(p.name for p in (data / "cellseg_masks").iterdir()) == [
        "nuclei_000_masks.tif",
        "nuclei_001_masks.tif",
    ]


def test_predict_reads_subfolders_and_image_suffixes_when_asked(nuclei_dir, tmp_path):
    out = tmp_path / "out"
    argv = ["predict", "--model", "nuclei", "--dir", str(nuclei_dir), "--output", str(out)]
    assert main([*argv, "--look_one_level_down"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "nuclei_000_masks.tif",
        "nuclei_001_masks.tif",
        "sub_nuclei_000_masks.tif",
    ]
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    shutil.copy(nuclei_dir / "nuclei_000.tif", renamed / "a_img.tif")
    shutil.copy(nuclei_dir / "nuclei_001.tif", renamed / "b.tif")
    argv = ["predict", "--model", "nuclei", "--dir", str(renamed), "--output", str(out / "f")]
    assert main([*argv, "--img_filter", "_img"]) == 0
    assert [p.name for p in (out / "f").iterdir()] == ["a_masks.tif"]


def test_predict_passes_its_options_to_the_model_and_the_reconstruction(
    nuclei_dir, tmp_path, monkeypatch, capsys
):
    from napari_cellseg.predict import Segmenter

    seen = {}
    original = Segmenter.from_file.__func__

    def spy(cls, model, **kwargs):  # noqa: ANN001, ANN003
        seen.update(kwargs)
        return original(cls, model, **kwargs)

    monkeypatch.setattr(Segmenter, "from_file", classmethod(spy))
    argv = ["predict", "--model", "nuclei", "--dir", str(nuclei_dir)]
    out = tmp_path / "big"
    options = ["--tile", "256", "--batch_size", "3", "--diameter", "27", "--device", "cpu"]
    assert main([*argv, "--output", str(out), *options]) == 0
    assert seen == {
        "device": "cpu",
        "tile": 256,
        "batch_size": 3,
        "diameter": 27.0,
        "overlap": 0.1,
        "amp": "auto",
    }
    assert main([*argv, "--output", str(tmp_path / "gpu"), "--use_gpu"]) == 0
    assert seen["device"] == "auto"
    assert main([*argv, "--output", str(tmp_path / "none"), "--min_size", "100000"]) == 0
    assert tifffile.imread(tmp_path / "none" / "nuclei_000_masks.tif").max() == 0
    assert tifffile.imread(out / "nuclei_000_masks.tif").max() > 0
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "x"), "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--threshold do(es) not apply to omni models; use --mask_threshold, " in err
    assert not (tmp_path / "x").exists()
    # the same options from a yaml (`--config`), the flags given winning
    options_file = tmp_path / "predict.yaml"
    options_file.write_text(
        "predict:\n  model: nuclei\n  tile: 128\n  overlap: 0.2\n  min_size: 100000\n"
    )
    argv = ["predict", "--config", str(options_file), "--dir", str(nuclei_dir)]
    assert main([*argv, "--output", str(tmp_path / "y"), "--device", "cpu"]) == 0
    assert (seen["tile"], seen["overlap"], seen["device"]) == (128, 0.2, "cpu")
    assert tifffile.imread(tmp_path / "y" / "nuclei_000_masks.tif").max() == 0
    assert main([*argv, "--output", str(tmp_path / "z"), "--min_size", "15"]) == 0
    assert tifffile.imread(tmp_path / "z" / "nuclei_000_masks.tif").max() > 0
    options_file.write_text("predict:\n  model: nuclei\n  tiles: 128\n")
    assert main([*argv, "--output", str(tmp_path / "w")]) == 2
    assert f"unknown option(s) in {options_file}: tiles" in capsys.readouterr().err
