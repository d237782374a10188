"""``cellseg tune``: the learning-rate range test and the Optuna studies, on tiny real runs."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from helpers import nuclei_folders, tiny_config
from napari_cellseg.cli import main
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.models.checkpoint import load_checkpoint
from napari_cellseg.train.trainer import Trainer
from napari_cellseg.tune import Stage, run_range_test, storage, tune_batch, tune_lr
from napari_cellseg.tune.range_test import rate_at, suggest


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return nuclei_folders(tmp_path / "data", val_seed=5)


def _config(tmp_path: Path, folders: tuple[Path, Path], **options) -> TrainConfig:
    train, val = folders
    options = {"dir": str(train), "test_dir": str(val), "batch_size": 2, **options}
    return tiny_config(tmp_path / "out" / "best.pt", **options)


def _trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_range_test_rate_rises_exponentially_and_suggests_a_tenth_of_the_loss_minimum(
    tmp_path, folders
):
    config = _config(tmp_path, folders)
    result = run_range_test(config, min_lr=1e-5, max_lr=1e-1, steps=12, num_workers=0)
    n = len(result.lrs)
    assert 5 <= n <= 12 and len(result.losses) == len(result.smoothed) == n
    assert result.lrs[0] == pytest.approx(1e-5)
    ratios = np.diff(np.log10(result.lrs))
    assert np.allclose(ratios, 4 / 11)  # 1e-5 .. 1e-1 in 12 steps
    best = int(np.argmin(result.smoothed))
    assert result.min_loss_lr == result.lrs[best]
    assert result.suggested_lr == pytest.approx(max(result.lrs[best] / 10, 1e-5))
    assert all(math.isfinite(v) and v > 0 for v in result.losses)
    assert not (tmp_path / "out").exists()  # a range test leaves nothing behind


def test_suggestion_and_rates_on_a_known_curve():
    lrs = [rate_at(i, 5, 1e-4, 1.0) for i in range(5)]
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert suggest(lrs, [5.0, 4.0, 2.0, 3.0, 9.0], 1e-4) == pytest.approx((1e-3, 1e-2))
    assert suggest(lrs, [1.0, 4.0, 5.0, 6.0, 9.0], 1e-4) == pytest.approx((1e-4, 1e-4))


def test_range_test_stops_when_the_loss_diverges(tmp_path, folders):
    config = _config(tmp_path, folders, optimizer="sgd")
    result = run_range_test(config, min_lr=1e-3, max_lr=1e6, steps=40, num_workers=0)
    assert result.diverged_lr is not None
    assert len(result.lrs) < 40
    assert result.suggested_lr < result.diverged_lr


@pytest.mark.parametrize("low, high", [(1e-2, 1e-2), (1e-1, 1e-3), (0.0, 1.0)])
def test_an_empty_or_non_positive_lr_range_is_refused(tmp_path, folders, low, high):
    with pytest.raises(CellsegError, match="range|positive"):
        run_range_test(_config(tmp_path, folders), min_lr=low, max_lr=high, steps=10)


def test_staged_lr_search_centres_each_stage_on_the_previous_best_and_keeps_one_model(
    tmp_path, folders
):
    config = _config(tmp_path, folders)
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    stages = [Stage(3, 1), Stage(2, 1, 0.25), Stage(1, 2, 0.05)]
    result = tune_lr(config, stages=stages, pow_range=(-4.0, -2.0), storage=storage, num_workers=0)
    trials = _trials(storage, result.study_name)
    assert [t.user_attrs["stage"] for t in trials] == [1, 1, 1, 2, 2, 3]
    for stage, width in ((2, 0.25), (3, 0.05)):
        before = [t for t in trials if t.user_attrs["stage"] == stage - 1 and t.value is not None]
        center = min(before, key=lambda t: t.value).params["log10_lr"]
        for t in (t for t in trials if t.user_attrs["stage"] == stage):
            assert abs(t.params["log10_lr"] - center) <= width + 1e-12
    for t in trials:  # each trial's options and curve are in the study
        assert t.user_attrs["config"]["learning_rate"] == pytest.approx(10 ** t.params["log10_lr"])
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value)
    assert result.best == pytest.approx(10 ** best.params["log10_lr"])
    assert result.best_val_loss == pytest.approx(best.value)
    assert result.best_pow == pytest.approx(best.params["log10_lr"])
    assert result.config.learning_rate == pytest.approx(result.best)
    # only the best trial's model is kept, with the study's record
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["best.pt", "best.yaml"]
    kept = load_checkpoint(tmp_path / "out" / "best.pt")
    assert kept.meta["tuning"]["trial"] == best.number
    assert kept.meta["training"]["learning_rate"] == pytest.approx(result.best)


def test_an_interrupted_study_resumes_without_repeating_trials(tmp_path, folders):
    config = _config(tmp_path, folders)
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    tune_lr(config, stages=[Stage(2, 1)], storage=storage, num_workers=0)
    first = _trials(storage, "cellseg-lr-omni")
    again = tune_lr(config, stages=[Stage(2, 1)], storage=storage, num_workers=0)
    assert len(_trials(storage, "cellseg-lr-omni")) == 2  # nothing left to do
    more = tune_lr(config, stages=[Stage(3, 1)], storage=storage, num_workers=0)
    trials = _trials(storage, "cellseg-lr-omni")
    assert len(trials) == 3
    assert [t.params for t in trials[:2]] == [t.params for t in first]
    assert trials[2].params != trials[0].params  # the resumed sampler draws anew
    assert more.best_val_loss <= again.best_val_loss


def test_a_study_made_for_another_search_is_refused(tmp_path, folders):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    tune_lr(
        _config(tmp_path, folders),
        stages=[Stage(1, 1)],
        storage=storage,
        study_name="mine",
        num_workers=0,
    )
    other = _config(tmp_path, folders, architecture="unet")
    with pytest.raises(CellsegError, match="made for architecture"):
        tune_lr(other, stages=[Stage(1, 1)], storage=storage, study_name="mine")


def test_a_locked_study_database_gives_a_clear_message(tmp_path, folders, monkeypatch):
    monkeypatch.setattr(storage, "SQLITE_TIMEOUT_S", 0.1)
    db = tmp_path / "tune.db"
    lock = sqlite3.connect(db)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CellsegError, match="could not be used.*locked"):
            tune_lr(_config(tmp_path, folders), stages=[Stage(1, 1)], storage=f"sqlite:///{db}")
    finally:
        lock.rollback()
        lock.close()
    assert not (tmp_path / "out" / "best.pt").exists()


def test_tuning_without_validation_data_is_refused(tmp_path, folders):
    config = _config(tmp_path, folders, test_dir=None)
    with pytest.raises(CellsegError, match="validation data"):
        tune_lr(config, stages=[Stage(1, 1)], storage=f"sqlite:///{tmp_path / 'tune.db'}")


def test_batch_search_stops_upward_at_the_first_out_of_memory_size(tmp_path, folders, monkeypatch):
    real_step = Trainer.optimizer_step

    def step(self, x, y, lr, epoch):
        if len(x) >= 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, x, y, lr, epoch)

    monkeypatch.setattr(Trainer, "optimizer_step", step)
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    config = _config(tmp_path, folders, n_epochs=1)
    result = tune_batch(config, batch_sizes=(1, 2, 4, 8), storage=storage, num_workers=0)
    trials = _trials(storage, result.study_name)
    assert [t.params["batch_size"] for t in trials] == [1, 2, 4]  # 8 never tried
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert trials[2].user_attrs["outcome"] == "out of memory"
    assert result.best in (1, 2)
    assert result.config.batch_size == result.best
    assert [r.state for r in result.trials] == ["complete", "complete", "out of memory"]


def test_cli_range_test_writes_options_that_train_reads_back(tmp_path, folders, capsys):
    train, val = folders
    out = tmp_path / "tune"
    argv = ["tune", "lr", "--range_test", "--train_data", str(train), "--val_data", str(val)]
    argv += ["--tyx", "64,64", "--batch", "2", "--nbase", "8,16,32", "--steps", "10"]
    assert main([*argv, "--min_lr", "1e-5", "--max_lr", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    suggested = float(printed.split("suggested learning rate ")[1].split()[0])
    options = TrainConfig.from_yaml(out / "tuned_lr.yaml")
    assert options.learning_rate == pytest.approx(suggested, rel=1e-2)
    assert options.tyx == (64, 64) and options.batch_size == 2
    assert options.model is None  # the tuned recipe, not this run's files
    assert (out / "lr_range_test.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_staged_search_writes_clb_best_final_pow(tmp_path, folders, capsys):
    train, val = folders
    out = tmp_path / "tune"
    argv = ["tune", "lr", "--architecture", "dcan", "--batch", "2", "--train_data", str(train)]
    argv += ["--val_data", str(val), "--tyx", "64,64", "--nbase", "8,16,32", "--out", str(out)]
    argv += ["--nimg_per_epoch", "4", "--draws", "2,1", "--stage_epochs", "1,1", "--widths", "0.5"]
    assert main(argv) == 0
    pow_ = float((out / "best_final_pow.txt").read_text())
    tuned = yaml.safe_load((out / "tuned_lr.yaml").read_text())
    assert tuned["learning_rate"] == pytest.approx(10**pow_)
    assert tuned["architecture"] == "dcan"
    assert load_checkpoint(out / "best_lr.pt").spec.arch == "dcan"
    assert "best learning rate" in capsys.readouterr().out


def test_cli_refuses_mismatched_stage_flags(tmp_path, folders, capsys):
    train, val = folders
    argv = ["tune", "lr", "--train_data", str(train), "--val_data", str(val)]
    assert main([*argv, "--draws", "2,1", "--stage_epochs", "1", "--out", str(tmp_path)]) == 2
    assert "one value per stage" in capsys.readouterr().err
