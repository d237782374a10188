"""The model card: what a tiny training run stores in its model file and yaml, and how a card
is read back from models with and without one."""

from __future__ import annotations

import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import TINY_TRAIN_OPTIONS, disc, save, tiny_config
from napari_cellseg import __version__
from napari_cellseg.cli import main
from napari_cellseg.export.card import (
    NOT_RECORDED,
    card_markdown,
    card_text,
    count_cells,
    model_card,
    run_command,
)
from napari_cellseg.models import ModelSpec, build_model
from napari_cellseg.models.checkpoint import load_checkpoint, save_checkpoint
from napari_cellseg.train import checkpoint_meta, train_until
from napari_cellseg.train.samples import TrainItem

SHAPE = (64, 64)
#: Disc centres of each image: the training folder has 3 + 2 cells, the validation one 4.
TRAIN_CELLS = {"a": [(16, 16), (16, 46), (46, 30)], "b": [(20, 20), (44, 44)]}
VAL_CELLS = {"v": [(14, 14), (14, 48), (48, 14), (48, 48)]}


def labels_of(centres: list[tuple[int, int]], r: float = 7) -> np.ndarray:
    """One disc of radius ``r`` per centre, labelled 1, 2, ..."""
    lab = np.zeros(SHAPE, np.uint16)
    for i, c in enumerate(centres, 1):
        lab[disc(SHAPE, c, r)] = i
    return lab


def write_folder(folder: Path, cells: dict[str, list[tuple[int, int]]]) -> Path:
    """Omnipose layout: ``<name>.tif`` and ``<name>_masks.tif`` per image."""
    rng = np.random.default_rng(0)
    for name, centres in cells.items():
        lab = labels_of(centres)
        image = (lab > 0) * 200.0 + rng.normal(20, 5, SHAPE)
        save(folder / f"{name}.tif", image.astype(np.float32))
        save(folder / f"{name}_masks.tif", lab)
    return folder


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """A tiny model trained for 2 epochs by the ``cellseg`` command, with validation."""
    root = tmp_path_factory.mktemp("card")
    train, val = write_folder(root / "train", TRAIN_CELLS), write_folder(root / "val", VAL_CELLS)
    model = root / "tiny.pt"
    argv = ["train", "--dir", str(train), "--test_dir", str(val), *TINY_TRAIN_OPTIONS]
    argv += ["--n_epochs", "2", "--nimg_per_epoch", "4", "--diameter", "14", "--model", str(model)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["/venv/bin/cellseg", *argv])
        assert main(argv) == 0
    return model, argv


def test_the_card_records_the_training_data_counts_and_folders(cli_run, tmp_path):
    model, _ = cli_run
    data = load_checkpoint(model).meta["card"]["training_data"]
    root = model.parent
    assert data["train"]["folders"] == [str((root / "train").resolve())]
    assert (data["train"]["images"], data["train"]["cells"]) == (2, 5)
    assert data["validation"]["folders"] == [str((root / "val").resolve())]
    assert (data["validation"]["images"], data["validation"]["cells"]) == (1, 4)
    assert data["diameter"]["trained_at"] == 14.0
    # discs of radius 7 measure about 14 px by Omnipose's definition
    assert data["diameter"]["measured"] == pytest.approx(14, abs=1.5)


def test_the_card_records_the_exact_command_versions_and_device(cli_run):
    model, argv = cli_run
    card = load_checkpoint(model).meta["card"]
    assert card["command"] == shlex.join(["cellseg", *argv])
    assert card["versions"]["napari-cellseg"] == __version__
    assert card["versions"]["torch"] == torch.__version__
    assert card["versions"]["python"] == platform.python_version()
    assert card["device"] == "cpu"
    assert card["date"][:4].isdigit()


def test_the_card_ends_with_the_final_losses_of_the_run(cli_run):
    model, _ = cli_run
    meta = load_checkpoint(model).meta
    metrics = meta["card"]["metrics"]
    assert metrics["epochs"] == 2
    assert metrics["train_loss"] == meta["history"][-1]["loss"]  # the last epoch's mean
    assert metrics["val_loss"] == meta["val_loss"] == meta["history"][-1]["val_loss"] is not None
    best = min(meta["history"], key=lambda r: r["val_loss"])
    assert (metrics["best_val_loss"], metrics["best_epoch"]) == (best["val_loss"], best["epoch"])


def test_the_yaml_beside_the_model_holds_the_same_card(cli_run):
    model, _ = cli_run
    text = model.with_suffix(".yaml").read_text()
    assert yaml.safe_load(text)["meta"]["card"] == load_checkpoint(model).meta["card"]


def test_model_card_adds_the_architecture_and_reads_the_yaml_too(cli_run):
    model, argv = cli_run
    card = model_card(model.with_suffix(".yaml"))
    assert card["recorded"] is True
    assert card["file"] == str(model)
    assert card["model"]["architecture"] == "omni"
    assert card["model"]["nbase"] == [8, 16, 32]
    n_params = sum(p.numel() for p in build_model(load_checkpoint(model).spec).parameters())
    assert card["model"]["parameters"] >= n_params  # + batch-norm statistics
    assert card["command"] == shlex.join(["cellseg", *argv])


def test_card_text_and_markdown_show_the_recorded_values(cli_run):
    model, argv = cli_run
    card = model_card(model)
    text = card_text(card)
    assert "2 images, 5 cells" in text and "1 images, 4 cells" in text
    assert shlex.join(["cellseg", *argv]) in text
    assert f"torch {torch.__version__}" in text
    assert f"val loss {card['metrics']['val_loss']:.4g}" in text
    assert "trained at 14 px" in text
    md = card_markdown(card)
    assert md.startswith("# tiny\n")
    assert "| training data |" in md and "2 images, 5 cells" in md
    assert "```bash\n" + shlex.join(["cellseg", *argv]) + "\n```" in md


def test_a_model_saved_before_cards_says_what_it_did_not_record(tmp_path):
    spec = ModelSpec(arch="omni", nbase=(8, 16))
    config = tiny_config(tmp_path / "old.pt", dir="data/train+data/train", diameter=20.0)
    meta = checkpoint_meta(config, epochs_done=3, train_loss=0.5, val_loss=None, history=[])
    assert "card" not in meta
    path = save_checkpoint(tmp_path / "old.pt", build_model(spec), spec, meta, epoch=3)
    card = model_card(path)
    assert card["recorded"] is False
    assert card["command"] == card["device"] == NOT_RECORDED
    assert card["versions"]["torch"] == NOT_RECORDED
    assert card["versions"]["napari-cellseg"] == __version__
    assert card["training_data"]["train"]["folders"] == ["data/train", "data/train"]
    assert card["training_data"]["train"]["cells"] == NOT_RECORDED
    assert card["training_data"]["diameter"]["trained_at"] == 20.0
    assert card["metrics"]["epochs"] == 3 and card["metrics"]["train_loss"] == 0.5
    text = card_text(card)
    assert "data/train (x2); images and cells not recorded" in text
    assert "saved before model cards" in text


@pytest.mark.parametrize("name", ["nuclei", "bacteria_phase"])
def test_the_builtin_models_have_cards_from_their_metadata(name):
    card = model_card(name)
    assert card["name"] == name and card["recorded"] is False
    assert card["description"] != NOT_RECORDED
    assert card["metrics"]["epochs"] == load_checkpoint(card["file"]).epoch
    assert card["training_data"]["train"]["folders"]


def test_a_run_on_layers_in_memory_records_their_names_and_the_python_api(tmp_path):
    items = [
        TrainItem(f"layer {k}", np.stack([(lab > 0).astype(np.float32)]), lab.astype(np.int32))
        for k, lab in enumerate([labels_of(TRAIN_CELLS["a"]), labels_of(TRAIN_CELLS["b"])])
    ]
    config = tiny_config(tmp_path / "mem.pt", n_epochs=1, nimg_per_epoch=2, batch_size=2)
    train_until(config, items=items)
    card = load_checkpoint(tmp_path / "mem.pt").meta["card"]
    assert card["training_data"]["train"]["layers"] == ["layer 0", "layer 1"]
    assert card["training_data"]["train"]["folders"] is None
    assert card["training_data"]["train"]["cells"] == 5
    assert card["training_data"]["validation"] is None
    assert card["command"].startswith("python API")
    text = card_text(model_card(config.model))
    assert "napari layers layer 0, layer 1; 2 images, 5 cells" in text


def test_the_command_of_the_cellseg_program_is_shell_quoted():
    argv = ["/usr/bin/cellseg", "train", "--dir", "my data", "--lr", "0.1"]
    assert run_command(argv) == "cellseg train --dir 'my data' --lr 0.1"
    assert run_command(["script.py", "-x"]) == "python API (script.py -x)"


def test_cells_are_counted_once_per_linked_group_without_blobs():
    lab = labels_of([(10, 10), (10, 40), (40, 10), (40, 40)])
    assert count_cells(lab) == 4
    assert count_cells(lab, {(1, 2)}) == 3
    assert count_cells(lab, blobs=True) == 3
    huge = lab.astype(np.int64) * 10**9  # sparse ids are counted without a huge bincount
    assert count_cells(huge) == 4
