"""Every ``cellseg`` command that writes files, run against a folder of files marked precious.

Each case is a command that would replace or clobber something a user made (annotations,
earlier results, a trained model, an options file). It must refuse with a message that says
why, exit with status 2, and leave the workspace exactly as it was: same files, same bytes,
nothing new. A new subcommand is covered by adding its cases to ``REFUSED`` (or its name to
``READ_ONLY``): ``test_every_subcommand_is_covered`` fails until then.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_cellseg import synth
from napari_cellseg.cli import SUBCOMMANDS, main
from napari_cellseg.io.images import read_mask, write_mask
from napari_cellseg.io.images.chunked import write_label_zarr
from napari_cellseg.io.links import write_links

#: Subcommands that write nothing.
READ_ONLY: set[str] = {"info"}

_TINY = ["--n_epochs", "1", "--tyx", "64,64", "--batch_size", "2", "--nbase", "8,16"]

#: (case, subcommand module, argv with {ws} for the workspace, message the refusal contains)
REFUSED = [
    (
        "tune over a trained model",
        "tune",
        "tune lr --train_data {ws}/images --val_data {ws}/images --model {ws}/models/tiny.pt "
        "--draws 1 --stage_epochs 1 --widths= --out {ws}/results " + " ".join(_TINY),
        "already exists and a new study would replace it",
    ),
    (
        "range test over an earlier result",
        "tune",
        "tune lr --range_test --train_data {ws}/images --val_data {ws}/images "
        "--out {ws}/tune --steps 5 " + " ".join(_TINY),
        "range-test file already exists",
    ),
    (
        "export over a model",
        "export",
        "export {ws}/models/tiny.pt --format onnx --out {ws}/models/tiny.pt",
        "already exists and would be replaced",
    ),
    (
        "import a Cellpose model over its own file",
        "import_cellpose",
        "import-cellpose {ws}/models/tiny.pt --out {ws}/models/tiny.pt",
        "is never written over",
    ),
    (
        "predict over earlier results",
        "predict",
        "predict --model {ws}/models/tiny.pt --dir {ws}/images --output {ws}/results",
        "2 output files already exist and would be replaced",
    ),
    (
        "predict a huge image over its earlier result",
        "predict",
        "predict --model {ws}/models/tiny.pt --image {ws}/images/nuclei_000.tif "
        "--output {ws}/results --chunk 32",
        "already exists and would be replaced",
    ),
    (
        "predict into the input folder",
        "predict",
        "predict --model {ws}/models/tiny.pt --dir {ws}/images --output {ws}/images --overwrite",
        "is the folder of the input images",
    ),
    (
        "predict onto a file",
        "predict",
        "predict --model {ws}/models/tiny.pt --dir {ws}/images --output {ws}/results/scores.csv",
        "is a file; give a folder",
    ),
    (
        "evaluate over an existing CSV",
        "evaluate",
        "evaluate --pred {ws}/results --gt {ws}/images --csv {ws}/results/scores.csv",
        "1 CSV file already exists",
    ),
    (
        "evaluate over a ground-truth mask",
        "evaluate",
        "evaluate --pred {ws}/results --gt {ws}/images --csv {ws}/images/nuclei_000_masks.tif "
        "--overwrite",
        "is an input file of this command",
    ),
    (
        "evaluate over a predicted mask",
        "evaluate",
        "evaluate --pred {ws}/results --gt {ws}/images --csv {ws}/results/nuclei_001_masks.tif "
        "--overwrite",
        "is an input file of this command",
    ),
    (
        "train over a trained model",
        "train",
        "train --dir {ws}/images --model {ws}/models/tiny.pt " + " ".join(_TINY),
        "--resume",
    ),
    (
        "fine-tune in place",
        "train",
        "train --dir {ws}/images --pretrained_model {ws}/models/tiny.pt "
        "--model {ws}/models/tiny.pt " + " ".join(_TINY),
        "already exists and a new run would replace it",
    ),
    (
        "train over a CSV log",
        "train",
        "train --dir {ws}/images --model {ws}/models/new.pt --csv_log {ws}/results/scores.csv "
        + " ".join(_TINY),
        "the CSV log",
    ),
    (
        "train over an options yaml",
        "train",
        "train --dir {ws}/images --args_load_path {ws}/options.yaml --model {ws}/options.pt",
        "options.yaml already exists",
    ),
    (
        "weight maps over the images",
        "make_weights",
        "make-weights {ws}/images --output {ws}/images --overwrite",
        "is an input file of this command",
    ),
    (
        "weight maps over earlier weight maps",
        "make_weights",
        "make-weights {ws}/images --output {ws}/results",
        "2 weight files already exist",
    ),
    (
        "QC fix into the dataset",
        "qc",
        "qc {ws}/images --fix {ws}/images/fixed",
        "outside the dataset",
    ),
    (
        "QC fix into a folder with files",
        "qc",
        "qc {ws}/images --fix {ws}/results",
        "not empty",
    ),
    (
        "track over an earlier result",
        "track",
        "track --method laptrack --labels {ws}/movie/01_GT/TRA --out {ws}/movie/01_RES",
        "already exist",
    ),
    (
        "tracking set over an earlier set",
        "make_tracking_set",
        "make-tracking-set {ws}/movie/01 --out {ws}/set --tyx 32,32",
        "already exist",
    ),
]


def _digest(root: Path) -> dict[str, str]:
    """Every path under ``root`` (folders too) with the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Annotated images, a user's earlier results, a trained model and an options file."""
    ws = tmp_path_factory.mktemp("precious")
    synth.make_dataset(ws / "images", kind="nuclei", n=2, shape=(64, 64), seed=0)
    labels = read_mask(ws / "images" / "nuclei_000_masks.tif")
    ids = [int(v) for v in np.unique(labels)[1:3]]
    write_links(ws / "images" / "nuclei_000_links.txt", [tuple(ids)])
    (ws / "results").mkdir()
    for i in range(2):  # the user's earlier predictions and weight maps
        write_mask(ws / "results" / f"nuclei_{i:03d}_masks.tif", labels)
        write_mask(ws / "results" / f"nuclei_{i:03d}.tif", labels)
    with write_label_zarr(ws / "results" / "nuclei_000_masks.ome.zarr", (64, 64), (32, 32)) as z:
        z.array[:] = labels  # an earlier huge-image result
    (ws / "results" / "scores.csv").write_text("name,ap_50\nnuclei_000,0.9\n")
    (ws / "options.yaml").write_text("n_epochs: 1\ntyx: [64, 64]\nbatch_size: 2\nnbase: [8, 16]\n")
    (ws / "tune").mkdir()  # an earlier range test's options, perhaps edited since
    (ws / "tune" / "tuned_lr.yaml").write_text("learning_rate: 0.01\n")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(
            ["train", "--dir", str(ws / "images"), "--model", str(ws / "models" / "tiny.pt")]
            + _TINY
        )
    assert code == 0
    _movie(ws / "movie")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert (
            main(
                [
                    "make-tracking-set",
                    str(ws / "movie" / "01"),
                    "--out",
                    str(ws / "set"),
                    "--tyx",
                    "32,32",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "track",
                    "--method",
                    "laptrack",
                    "--labels",
                    str(ws / "movie" / "01_GT" / "TRA"),
                    "--out",
                    str(ws / "movie" / "01_RES"),
                ]
            )
            == 0
        )
    return ws


def _movie(root: Path) -> None:
    """A small CTC tree: ``01/tNNN.tif`` and ``01_GT/TRA``."""
    from napari_cellseg.track.folders import write_sequence

    movie = synth.timelapse("nuclei", n_frames=4, shape=(64, 64), n_cells=3, seed=0)
    write_sequence(root, movie.images, movie.labels, movie.tracks)


@pytest.fixture
def workspace(template, tmp_path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(template, ws)
    return ws


@pytest.mark.parametrize(
    ("argv", "message"),
    [pytest.param(argv, message, id=case) for case, _, argv, message in REFUSED],
)
def test_a_command_that_would_lose_a_users_file_refuses_and_writes_nothing(
    workspace, capsys, argv, message
):
    before = _digest(workspace)
    code = main(argv.format(ws=workspace).split())
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert _digest(workspace) == before


def test_the_demo_never_writes_into_a_folder_with_files(workspace, capsys):
    before = _digest(workspace / "results")
    argv = ["demo", "--no_train", "--out", str(workspace / "results"), "--n_train", "1"]
    assert main([*argv, "--n_test", "1"]) == 0
    assert f"this run writes to {workspace / 'results-2'} instead" in capsys.readouterr().out
    assert _digest(workspace / "results") == before
    assert (workspace / "results-2" / "train" / "bacteria_000_masks.tif").is_file()


def test_every_subcommand_is_covered():
    covered = {module for _, module, _, _ in REFUSED} | {"demo"} | READ_ONLY
    assert set(SUBCOMMANDS) <= covered, f"add cases for {set(SUBCOMMANDS) - covered}"
