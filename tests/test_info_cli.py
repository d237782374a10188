"""``cellseg info MODEL``: the model card as text or JSON, for model files, their yaml and the
built-in models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import disc, tiny_config
from napari_cellseg.cli import main
from napari_cellseg.export.card import card_metrics, model_card, training_card
from napari_cellseg.models import ModelSpec, build_model
from napari_cellseg.models.checkpoint import save_checkpoint
from napari_cellseg.train import checkpoint_meta
from napari_cellseg.train.samples import TrainItem

HISTORY = [
    {"epoch": 1, "loss": 0.9, "val_loss": 0.8},
    {"epoch": 2, "loss": 0.7, "val_loss": 0.6},
    {"epoch": 3, "loss": 0.5, "val_loss": 0.65},
]


@pytest.fixture
def model_file(tmp_path):
    """A model whose card says: 3 images with 1, 2 and 3 cells (the first one also for
    validation), 3 epochs, best epoch 2."""
    items = []
    for n in (1, 2, 3):
        lab = np.zeros((32, 32), np.int32)
        for i in range(n):
            lab[disc((32, 32), (8 + 8 * i, 16), 3)] = i + 1
        items.append(TrainItem(f"img{n}.tif", np.zeros((1, 32, 32), np.float32), lab))
    config = tiny_config(
        tmp_path / "m.pt", dir=str(tmp_path / "train"), test_dir=str(tmp_path / "val")
    )
    card = training_card(items, items[:1], config, "cpu", command="cellseg train --dir train")
    card["metrics"] = card_metrics(3, 0.5, 0.65, HISTORY)
    spec = ModelSpec(arch="omni", nbase=(8, 16))
    meta = {**checkpoint_meta(config, history=HISTORY), "card": card, "description": "demo"}
    return save_checkpoint(tmp_path / "m.pt", build_model(spec), spec, meta, epoch=3)


def test_info_prints_the_card_of_a_model_file(model_file, capsys, tmp_path):
    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("m: demo\n")
    assert f"{model_file.parent / 'train'}; 3 images, 6 cells" in out
    assert f"validation data  {(tmp_path / 'val').resolve()}; 1 images, 1 cells" in out
    assert "3 epochs, final train loss 0.5, val loss 0.65, best val loss 0.6 (epoch 2)" in out
    assert "cellseg train --dir train" in out
    assert f"torch {torch.__version__}" in out
    assert "device           cpu" in out


def test_info_json_is_the_card_and_the_yaml_gives_the_same(model_file, capsys):
    assert main(["info", "--json", str(model_file.with_suffix(".yaml"))]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card == json.loads(json.dumps(model_card(model_file)))
    assert card["training_data"]["train"]["cells"] == 6
    assert card["metrics"]["best_epoch"] == 2


@pytest.mark.parametrize("name", ["nuclei", "bacteria_phase"])
def test_info_on_a_builtin_model_shows_what_its_metadata_holds(name, capsys):
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: ")
    assert "omni, 1 channel(s), nclasses 2" in out
    assert "command          not recorded" in out
    assert "saved before model cards" in out


def test_info_on_a_file_that_is_no_model_is_the_loaders_error(tmp_path, capsys):
    notes = tmp_path / "notes.pt"
    notes.write_text("hello")
    assert main(["info", str(notes)]) == 2
    err = capsys.readouterr().err
    assert f"cellseg info: error: {notes} is not a napari-cellseg model file" in err
    assert main(["info", "no_such_model"]) == 2
    assert "model 'no_such_model' not found" in capsys.readouterr().err
