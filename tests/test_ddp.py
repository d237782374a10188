"""Training on several processes for real: two gloo ranks on this CPU, against one process.

Two ranks with ``--batch_size 2`` train on the crops one process with ``--batch_size 4`` takes
(rank 0 the even ones, rank 1 the odd ones), with the batch-norm statistics of the global
batch; so after every step both ranks hold the same weights, and rank 0's model file is the
single-process model within float tolerance.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from helpers import TINY_TRAIN_OPTIONS, tiny_config
from napari_cellseg import synth
from napari_cellseg.cli import main
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.models.checkpoint import load_checkpoint
from napari_cellseg.train import distributed, train
from napari_cellseg.train.distributed import torchrun_command

#: Two epochs of two steps: 8 crops an epoch in global batches of 4 (2 ranks x 2, or 1 x 4).
BASE = dict(n_epochs=2, batch_size=2, nimg_per_epoch=8, learning_rate=5e-3, save_every=1)
#: The Omnipose loss (Euler steps through bilinear sampling) multiplies float rounding by about
#: 10 a step, and AdamW turns the rounding noise of gradients that are 0 in exact arithmetic
#: (biases before a batch norm) into steps of the learning rate: the comparison with one
#: process is made after 2 SGD steps, which change the weights by up to 1.5e-2 and where
#: the rounding of summing over 2 ranks instead of 1 batch accounts for ~3e-5.
TOLERANCE = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([v.detach().flatten().double() for v in model.state_dict().values()]).numpy()


def _rank(rank: int, port: int, configs: list[TrainConfig], out: Path, stop_after: int) -> None:
    """One of 2 ranks: train ``configs[rank]`` (stopping after epoch ``stop_after`` if given),
    recording the weights after every step, or the error."""
    from napari_cellseg.train.trainer import Trainer

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    weights = []
    step = Trainer.optimizer_step

    def recorded(self, *args):
        done = step(self, *args)
        weights.append(_flat(self.run.model))
        return done

    Trainer.optimizer_step = recorded
    try:
        with distributed.session(configs[rank]):
            gen = train(configs[rank])
            for event in gen:
                if event.kind == "epoch" and event.epoch == stop_after:
                    gen.close()
    except CellsegError as exc:
        (out / f"error{rank}.txt").write_text(str(exc))
        return
    np.save(out / f"weights{rank}.npy", np.stack(weights))


def _two_ranks(configs: list[TrainConfig], out: Path, stop_after: int = 0) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_rank, args=(_free_port(), configs, out, stop_after), nprocs=2, join=True)


def _one_process(config: TrainConfig, stop_after: int = 0) -> None:
    """The same run in this process with the global batch (``2 x batch_size``)."""
    gen = train(dataclasses.replace(config, batch_size=2 * config.batch_size))
    for event in gen:
        if event.kind == "epoch" and event.epoch == stop_after:
            gen.close()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _max_gap(a: Path, b: Path) -> float:
    sa, sb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple[Path, TrainConfig]:
    """Two ranks trained for 1 of 2 epochs (then stopped, as by Ctrl-C), and the same run in
    one process; returns the root folder and the ranks' options."""
    root = tmp_path_factory.mktemp("ddp")
    data = root / "train"
    synth.make_dataset(data, kind="nuclei", n=2, shape=(64, 64), seed=0)
    config = tiny_config(
        root / "ddp" / "m.pt", dir=str(data), test_dir=str(data), optimizer="sgd", **BASE
    )
    _two_ranks([config, config], root / "steps", stop_after=1)
    torch.set_num_threads(1)
    _one_process(dataclasses.replace(config, model=str(root / "one" / "m.pt")), stop_after=1)
    return root, config


def test_two_gloo_ranks_hold_the_same_weights_after_every_step(interrupted):
    root, _ = interrupted
    w0, w1 = np.load(root / "steps" / "weights0.npy"), np.load(root / "steps" / "weights1.npy")
    assert w0.shape[0] == 2  # 2 steps of the first epoch
    assert np.array_equal(w0, w1)
    assert not np.array_equal(w0[0], w0[1])  # the steps did change the weights


def test_rank_zero_writes_the_model_of_one_process_on_the_global_batch(interrupted):
    root, _ = interrupted
    assert _max_gap(root / "ddp" / "m.pt", root / "one" / "m.pt") < TOLERANCE
    ddp, one = (load_checkpoint(root / d / "m.pt").meta for d in ("ddp", "one"))
    assert ddp["epochs_done"] == one["epochs_done"] == 1
    # the training loss is the mean over the ranks and the validation loss is reduced over them
    for key in ("loss", "val_loss", "flow", "euler"):
        assert ddp["history"][0][key] == pytest.approx(one["history"][0][key], rel=1e-5), key
    assert ddp["training"]["batch_size"] == 2


def test_only_rank_zero_writes_and_it_writes_one_set_of_files(interrupted):
    root, _ = interrupted
    ddp, one = _files(root / "ddp"), _files(root / "one")
    assert [f for f in ddp if "tfevents" not in f] == ["m.csv", "m.pt", "m.yaml"]
    assert len(ddp) == len(one) == 4  # and one TensorBoard event file
    rows = (root / "ddp" / "m.csv").read_text().splitlines()
    assert len(rows) == 2  # header and epoch 1, written once


def test_every_rank_resumes_from_the_same_checkpoint(interrupted):
    root, config = interrupted
    model = root / "ddp" / "m.pt"
    one = root / "one_resumed" / "m.pt"
    one.parent.mkdir()
    shutil.copy(model, one)  # one process resumes from the ranks' checkpoint
    _two_ranks([dataclasses.replace(config, model=None, resume=str(model))] * 2, root / "resumed")
    w0, w1 = (np.load(root / "resumed" / f"weights{r}.npy") for r in (0, 1))
    assert w0.shape[0] == 2 and np.array_equal(w0, w1)  # epoch 2 only, the same on both ranks
    _one_process(dataclasses.replace(config, model=None, resume=str(one)))
    assert load_checkpoint(model).meta["epochs_done"] == 2
    assert _max_gap(model, one) < TOLERANCE
    assert len((root / "ddp" / "m.csv").read_text().splitlines()) == 3  # epochs 1 and 2


def test_ranks_given_different_options_refuse_to_start_and_write_nothing(tmp_path):
    data = tmp_path / "train"
    synth.make_dataset(data, kind="nuclei", n=1, shape=(64, 64), seed=0)
    config = tiny_config(tmp_path / "out" / "m.pt", dir=str(data), **BASE)
    other = dataclasses.replace(config, learning_rate=1e-2)
    _two_ranks([config, other], tmp_path / "log")
    for rank in (0, 1):
        text = (tmp_path / "log" / f"error{rank}.txt").read_text()
        assert "rank 0 and rank 1 differ in --learning_rate 0.005 vs 0.01" in text
        assert "same command line" in text and "Nothing was written" in text
    assert not (tmp_path / "out").exists()


def test_ddp_execs_torchrun_with_the_same_arguments_and_trains(tmp_path, capsys):
    data = tmp_path / "train"
    synth.make_dataset(data, kind="nuclei", n=2, shape=(64, 64), seed=0)
    model = tmp_path / "models" / "m.pt"
    argv = ["train", "--dir", str(data), *TINY_TRAIN_OPTIONS, "--model", str(model)]
    argv += ["--n_epochs", "1", "--nimg_per_epoch", "4", "--ddp", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "napari_cellseg.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running: " + " ".join(torchrun_command(argv, 2)) in done.stdout
    assert done.stdout.count(f"model saved to {model}") == 1  # rank 0 speaks, and writes
    assert [f for f in _files(model.parent) if "tfevents" not in f] == ["m.csv", "m.pt", "m.yaml"]
    meta = load_checkpoint(model).meta
    assert meta["epochs_done"] == 1 and meta["training"]["ddp"] == 2


def test_dataparallel_is_ddp_on_this_machine_and_says_so(tmp_path, monkeypatch, capsys):
    commands = []

    def execv(path: str, command: list[str]) -> None:
        commands.append(command)
        raise SystemExit(0)  # as torchrun's exit once the ranks are done

    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["train", "--dir", str(tmp_path), "--dataparallel", "--batch_size", "4"]
    with pytest.raises(SystemExit):
        main(argv)
    n = distributed.default_processes()
    out = capsys.readouterr().out
    assert "--dataparallel (Omnipose: torch DataParallel over the GPUs) runs as " in out
    assert f"DistributedDataParallel on this machine: {n} process(es)" in out
    assert f"global batch {n} x --batch_size 4" in out
    assert commands == [torchrun_command(argv, n)]
