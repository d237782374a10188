"""The training generator: real PyTorch training on synthetic data, logs, checkpoints, resume."""

from __future__ import annotations

import csv
import dataclasses
import threading
import time
import warnings

import numpy as np
import pytest
import torch

from helpers import nuclei_folders, tiny_config, tiny_train_argv
from napari_cellseg import synth
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.models.checkpoint import load_checkpoint
from napari_cellseg.preprocess import Channels, prepare_image
from napari_cellseg.train import Progress, train, train_until
from napari_cellseg.train.samples import make_items


def _items(config: TrainConfig, n: int = 3, seed: int = 0, shape=(96, 96)):
    pairs = [synth.bacteria(shape, seed=seed + i) for i in range(n)]
    return make_items(
        [p[0] for p in pairs], [p[1] for p in pairs], config, names=[f"synth{i}" for i in range(n)]
    )


def _config(tmp_path, **kw) -> TrainConfig:
    kw = {"n_epochs": 3, "learning_rate": 5e-3, "save_every": 1, **kw}
    return tiny_config(kw.pop("model", tmp_path / "m.pt"), **kw)


def _run(gen):
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as done:
        return events, done.value


@pytest.mark.parametrize("arch", ["omni", "unet", "dcan"])
def test_each_architecture_trains_and_its_loss_goes_down(tmp_path, arch):
    cfg = _config(tmp_path, architecture=arch, n_epochs=20, learning_rate=1e-2)
    items = _items(cfg, n=2)
    events, result = _run(train(cfg, items, items))
    val = [e.val_loss for e in events if e.kind == "epoch"]
    assert len(val) == 20 and all(np.isfinite(val))
    # the validation crops are fixed, so this compares like with like
    assert min(val[-3:]) < 0.8 * val[0], val
    assert result.model_path.exists() and result.epochs_done == 20 and not result.stopped
    ckpt = load_checkpoint(result.model_path)
    assert ckpt.spec.arch == arch and ckpt.meta["training"]["architecture"] == arch
    assert ckpt.meta["normalization"]["method"] == "percentile"


def test_progress_events_count_steps_and_logs_are_real(tmp_path):
    cfg = _config(tmp_path, tb_dir=str(tmp_path / "tb"), csv_log=str(tmp_path / "log.csv"))
    items = _items(cfg)
    val = _items(cfg, n=1, seed=50)
    events, result = _run(train(cfg, items, val))
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 7))  # 8 crops / batch 4 = 2 steps x 3 epochs
    assert all(isinstance(e, Progress) and e.total_steps == 6 for e in events)
    epoch_events = [e for e in events if e.kind == "epoch"]
    assert all(e.val_loss is not None and np.isfinite(e.val_loss) for e in epoch_events)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_loss"]) == pytest.approx(epoch_events[-1].val_loss)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert files
    acc = EventAccumulator(str(files[0].parent))
    acc.Reload()
    assert [s.step for s in acc.Scalars("loss/val")] == [1, 2, 3]
    assert len(acc.Scalars("loss/train_step")) == 6
    assert (tmp_path / "m.yaml").exists()


def test_stop_event_saves_the_last_state(tmp_path):
    cfg = _config(tmp_path, n_epochs=50)
    stop = threading.Event()
    gen = train(cfg, _items(cfg), stop=stop)
    for event in gen:
        if event.step == 5:
            stop.set()
    # The generator ended by itself after the stop.
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.epoch in (2, 3)


def test_train_until_stops_at_the_deadline_and_saves(tmp_path):
    cfg = _config(tmp_path, n_epochs=50)
    seen: list[Progress] = []
    result = train_until(cfg, time.monotonic(), _items(cfg), on_event=seen.append)
    # the deadline had passed at the first step: the run stops right after it
    assert [e.step for e in seen] == [1] and result.stopped
    assert load_checkpoint(result.model_path).epoch == 0


def test_train_until_stops_when_the_callback_says_so_or_runs_to_the_end(tmp_path):
    cfg = _config(tmp_path, n_epochs=50)
    result = train_until(cfg, None, _items(cfg), on_event=lambda e: e.step == 4)
    assert result.stopped and result.epochs_done == 2
    cfg = _config(tmp_path / "second", n_epochs=2)
    result = train_until(cfg, time.monotonic() + 600, _items(cfg))
    assert not result.stopped and result.epochs_done == 2


def test_kill_and_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = _config(tmp_path / "a", n_epochs=4)
    _run(train(straight, _items(straight)))
    interrupted = _config(tmp_path / "b", n_epochs=4)
    gen = train(interrupted, _items(interrupted))
    for event in gen:
        if event.kind == "epoch" and event.epoch == 2:
            gen.close()  # killed: the generator saves the last whole epoch
    assert load_checkpoint(tmp_path / "b" / "m.pt").epoch == 2
    resumed = _config(tmp_path / "b", n_epochs=4, resume=str(tmp_path / "b" / "m.pt"))
    resumed.model = None
    events, result = _run(train(resumed, _items(resumed)))
    assert events[0].epoch == 3 and result.epochs_done == 4
    a = load_checkpoint(tmp_path / "a" / "m.pt").state_dict
    b = load_checkpoint(tmp_path / "b" / "m.pt").state_dict
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_fine_tuning_refuses_a_model_with_other_channels(tmp_path):
    cfg = _config(tmp_path, n_epochs=1)
    _run(train(cfg, _items(cfg)))
    two = _config(
        tmp_path,
        n_epochs=1,
        nchan=2,
        pretrained_model=str(tmp_path / "m.pt"),
        model=str(tmp_path / "m2.pt"),
    )
    imgs = [np.stack([synth.bacteria((64, 64), seed=1)[0]] * 2)]
    labs = [synth.bacteria((64, 64), seed=1)[1]]
    with pytest.raises(CellsegError, match="nchan"):
        _run(train(two, make_items(imgs, labs, two)))
    assert not (tmp_path / "m2.pt").exists()


def test_float_labels_are_refused_with_the_sample_name(tmp_path):
    cfg = _config(tmp_path)
    img, lab = synth.nuclei((64, 64), seed=0)
    with pytest.raises(CellsegError, match="cells.tif.*not integers"):
        make_items([img], [lab.astype(np.float32)], cfg, names=["cells.tif"])


def test_images_without_cells_do_not_crash_training(tmp_path):
    cfg = _config(tmp_path, n_epochs=1)
    img, _ = synth.nuclei((96, 96), seed=0)
    items = make_items([img], [np.zeros((96, 96), np.int32)], cfg, names=["empty"])
    with pytest.warns(UserWarning, match="no labelled cells"):
        events, result = _run(train(cfg, items))
    assert np.isfinite(result.final_loss)


def test_training_from_a_folder_with_the_cli(tmp_path):
    from napari_cellseg.cli import main

    train_dir, val_dir = nuclei_folders(tmp_path, val_seed=9)
    options = ["--test_dir", str(val_dir), "--n_epochs", "1", "--RAdam", "--learning_rate", "0.001"]
    code = main(tiny_train_argv(train_dir, tmp_path / "cli.pt", *options))
    assert code == 0
    ckpt = load_checkpoint(tmp_path / "cli.pt")
    assert ckpt.meta["training"]["optimizer"] == "radam"
    assert ckpt.meta["val_loss"] is not None


def test_a_short_grey_stack_is_frames_for_a_one_channel_model_and_rgb_is_one_image() -> None:
    rng = np.random.default_rng(0)
    stack = rng.random((3, 40, 50)).astype(np.float32)
    frames = prepare_image(stack, Channels(nchan=1), source="stack.tif")
    assert [f.shape for f in frames] == [(1, 40, 50)] * 3
    assert np.corrcoef(frames[1].ravel(), stack[1].ravel())[0, 1] > 0.999  # not averaged

    (rgb,) = prepare_image(rng.random((40, 50, 3)), Channels(nchan=1), source="rgb.png")
    assert rgb.shape == (1, 40, 50)
    (cyx,) = prepare_image(stack, Channels(nchan=3), source="cyx.tif")
    assert cyx.shape == (3, 40, 50)


def test_a_new_run_refuses_to_replace_a_trained_model_and_names_the_ways_on(tmp_path):
    cfg = _config(tmp_path, n_epochs=1)
    _run(train(cfg, _items(cfg)))
    trained = (tmp_path / "m.pt").read_bytes()
    with pytest.raises(CellsegError) as err:
        _run(train(_config(tmp_path, n_epochs=1), _items(cfg)))
    message = str(err.value)
    assert f"{tmp_path / 'm.pt'} already exists" in message
    assert "--resume" in message and "--pretrained_model" in message
    assert (tmp_path / "m.pt").read_bytes() == trained


def test_temporaries_of_a_killed_checkpoint_write_are_removed_at_the_next_start(tmp_path):
    stale = [tmp_path / ".m.pt.0123abcd.tmp", tmp_path / ".m.yaml.89abcdef.tmp.yaml"]
    others = [tmp_path / ".n.pt.0123abcd.tmp", tmp_path / "notes.tmp"]
    for path in stale + others:
        path.write_bytes(b"half a file")
    cfg = _config(tmp_path, n_epochs=1)
    _run(train(cfg, _items(cfg)))
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"half a file" for p in others)
    assert load_checkpoint(tmp_path / "m.pt").epoch == 1


def test_resuming_with_other_epochs_says_how_the_schedule_changes_and_the_clock_goes_on(tmp_path):
    cfg = _config(tmp_path, n_epochs=4)
    gen = train(cfg, _items(cfg))
    for event in gen:
        if event.kind == "epoch" and event.epoch == 2:
            gen.close()
    resumed = _config(tmp_path, n_epochs=6, resume=str(tmp_path / "m.pt"))
    with pytest.warns(UserWarning, match=r"after epoch 2 with --n_epochs 4 -> 6: .* from 0\.00"):
        _run(train(resumed, _items(resumed)))
    with open(tmp_path / "m.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    elapsed = [float(r["elapsed_s"]) for r in rows]
    assert all(b > a for a, b in zip(elapsed, elapsed[1:])), elapsed
    same = _config(tmp_path, n_epochs=6, resume=str(tmp_path / "m.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same schedule: nothing to say
        _run(train(same, _items(same)))


def test_the_default_amp_auto_trains_in_float32_on_a_cpu_and_bf16_only_when_asked(tmp_path):
    from napari_cellseg.runtime import _cpu_has_bf16, autocast_dtype
    from napari_cellseg.train.setup import set_up

    cpu = torch.device("cpu")
    # prediction: bf16 where the CPU has it; training: float32 unless --amp on (issue 12)
    assert autocast_dtype(cpu, "auto") == (torch.bfloat16 if _cpu_has_bf16() else None)
    assert autocast_dtype(cpu, "on") == torch.bfloat16 and autocast_dtype(cpu, "off") is None
    cfg = _config(tmp_path, amp="auto", n_epochs=3, learning_rate=1e-2)
    items = _items(cfg, n=2)
    assert set_up(cfg, items, items).amp_dtype is None
    on = dataclasses.replace(cfg, amp="on", model=str(tmp_path / "on.pt"))
    assert set_up(on, items, items).amp_dtype == torch.bfloat16
    events, result = _run(train(cfg, items, items))
    losses = [e.loss for e in events if e.kind == "epoch"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    state = load_checkpoint(result.model_path).state_dict
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
