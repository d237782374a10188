"""Training options: every seed flag parses, aliases, contradictions, yaml round trip."""

from __future__ import annotations

import argparse

import pytest
import yaml

from napari_cellseg.cli import build_parser
from napari_cellseg.config import TrainConfig, add_config_arguments, config_from_args
from napari_cellseg.errors import CellsegError

OMNIPOSE_ARGS = (
    "--dir /d --test_dir /t --img_filter _img --mask_filter _masks --look_one_level_down "
    "--links --nchan 2 --nclasses 3 --all_channels --channel_axis 0 --diameter 0 "
    "--pretrained_model None --learning_rate 0.1 --RAdam --batch_size 16 --n_epochs 4000 "
    "--tyx 224,224 --dataloader --num_workers 2 --save_every 50 --save_each --use_gpu"
)
CLB_ARGS = (
    "--architecture dcan --epochs 500 --batch 6 --augments 10 --trim_method resize "
    "--train_data /a+/b --val_data /v --model m.pt --channels 1 --lr 0.001 --im_dim 256 "
    "--bnd_weight 0.5 --obj_weight 0.5 --dropout 0.2 --dcan_final_act tanh "
    "--tb_dir tensorboard/ --csv_log log.csv --seed 48"
)


def _parse(text: str) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(text.split()))


def test_every_omnipose_flag_parses_to_its_option():
    c = _parse(OMNIPOSE_ARGS)
    assert (c.dir, c.test_dir, c.img_filter, c.mask_filter) == ("/d", "/t", "_img", "_masks")
    assert c.look_one_level_down and c.links and c.all_channels and c.save_each and c.dataloader
    assert (c.nchan, c.nclasses, c.channel_axis, c.diameter) == (2, 3, 0, 0.0)
    assert c.pretrained_model is None
    assert (c.learning_rate, c.optimizer, c.batch_size, c.n_epochs) == (0.1, "radam", 16, 4000)
    assert c.tyx == (224, 224) and c.num_workers == 2 and c.save_every == 50 and c.use_gpu


def test_every_clb_flag_parses_to_its_option():
    c = _parse(CLB_ARGS)
    assert (c.architecture, c.n_epochs, c.batch_size, c.augments) == ("dcan", 500, 6, 10)
    assert (c.trim_method, c.dir, c.test_dir, c.model) == ("resize", "/a+/b", "/v", "m.pt")
    assert (c.nchan, c.learning_rate, c.im_dim, c.dropout) == (1, 0.001, 256, 0.2)
    assert (c.bnd_weight, c.obj_weight, c.dcan_final_act) == (0.5, 0.5, "tanh")
    assert (c.tb_dir, c.csv_log, c.seed) == ("tensorboard/", "log.csv", 48)
    assert c.crop_shape == (256, 256)


def test_train_subcommand_accepts_omnipose_train_switch_and_groups_help(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--train", "--dir", "/d", "--lr", "0.01"])
    assert args.dir == "/d" and args.learning_rate == 0.01
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for title in ("data (Omnipose", "augmentation:", "model:", "optimisation:", "output and logs:"):
        assert title in text


@pytest.mark.parametrize(
    "flags, words",
    [
        ("--RAdam --optimizer sgd", ["--RAdam", "--optimizer sgd"]),
        ("--resume a.pt --pretrained_model b.pt", ["--resume", "--pretrained_model"]),
        ("--architecture dcan --nclasses 3", ["--nclasses 3", "omni"]),
        ("--nclasses 5", ["--nclasses 5", "not a number of cell types"]),
        ("--use_gpu --device cpu", ["--use_gpu", "--device cpu"]),
        ("--chan2 2", ["--chan2 needs --chan"]),
        ("--chan 1 --chan2 2 --nchan 3", ["--nchan is 3"]),
    ],
)
def test_contradictory_flags_get_a_clear_error(flags, words):
    with pytest.raises(CellsegError) as err:
        _parse("--dir /d " + flags)
    for word in words:
        assert word in str(err.value)


def test_tyx_must_be_multiples_of_eight(capsys):
    with pytest.raises(SystemExit):
        _parse("--tyx 100,100")
    assert "multiple of 8" in capsys.readouterr().err


def test_yaml_round_trip_and_command_line_overrides_the_file(tmp_path):
    original = _parse(CLB_ARGS)
    path = tmp_path / "opts.yaml"
    path.write_text(yaml.safe_dump(original.to_dict()))
    assert TrainConfig.from_yaml(path) == original
    overridden = _parse(f"--args_load_path {path} --epochs 7 --lr 0.5")
    assert (overridden.n_epochs, overridden.learning_rate) == (7, 0.5)
    assert overridden.architecture == "dcan" and overridden.augments == 10


def test_clb_style_flat_yaml_with_aliases_is_read(tmp_path):
    path = tmp_path / "model_6.yaml"
    path.write_text(
        "{architecture: unet, epochs: 500, batch: 6, augments: 10, trim_method: resize,\n"
        " train_data: data/train, val_data: data/val, model: models/m.pt, lr: 0.001,\n"
        " im_dim: 256, bnd_weight: 0.5, obj_weight: 0.5, dropout: 0.0, dcan_final_act: tanh,\n"
        " tb_dir: 'tensorboard/', csv_log: 'log.csv', seed: 48}\n"
    )
    c = TrainConfig.from_yaml(path)
    assert (c.architecture, c.n_epochs, c.batch_size, c.dir, c.learning_rate) == (
        "unet",
        500,
        6,
        "data/train",
        0.001,
    )


def test_unknown_option_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rat: 0.1\n")
    with pytest.raises(CellsegError, match="bad.yaml.*learning_rat|learning_rat.*bad.yaml"):
        TrainConfig.from_yaml(path)
