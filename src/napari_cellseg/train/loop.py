"""The training loop: a generator of progress events shared by the CLI and the napari widget.

>>> gen = train(config)                 # doctest: +SKIP
>>> for event in gen: print(event.loss)  # doctest: +SKIP

The generator yields a :class:`Progress` after every optimiser step and at the end of every
epoch, and returns a :class:`TrainResult`. Stopping is cooperative: set ``stop`` (a
``threading.Event``) or close the generator; either way the current state is saved as the
last good checkpoint and the run can be continued with ``--resume``.
"""

from __future__ import annotations

import csv
import math
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cellseg import __version__
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.io.outputs import remove_stale_temporaries
from napari_cellseg.preprocess import NORMALIZATION
from napari_cellseg.runtime import autocast_dtype, pick_device
from napari_cellseg.train.samples import CropMaker, TrainItem, load_items


@dataclass(frozen=True)
class Progress:
    """One training event.

    Attributes
    ----------
    kind
        ``"step"`` after an optimiser step, ``"epoch"`` after an epoch (with ``val_loss``).
    epoch
        Current epoch, 1-based.
    step, total_steps
        Optimiser steps done in this run (resumed runs count from where they left off) and
        planned in total.
    loss
        Training loss of this step (``"step"``) or the epoch mean (``"epoch"``).
    val_loss
        Validation loss at the end of the epoch, ``None`` without validation data.
    lr
        Learning rate used for the step.
    eta_s, elapsed_s
        Estimated seconds to the end and seconds since the start.
    parts
        Loss components (e.g. flow, distance, boundary) for ``"epoch"`` events.
    data_wait_s
        Seconds the loop has spent waiting for batches since the start (data preparation
        not hidden behind the network's work).
    """

    kind: str
    epoch: int
    n_epochs: int
    step: int
    total_steps: int
    loss: float
    val_loss: float | None = None
    lr: float = 0.0
    eta_s: float = 0.0
    elapsed_s: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    data_wait_s: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run produced."""

    model_path: Path
    epochs_done: int
    final_loss: float
    val_loss: float | None
    stopped: bool
    history: list[dict[str, float]]


def default_model_path(config: TrainConfig) -> Path:
    """``<first training folder>/models/cellseg_<arch>_nchan<C>_nclasses<K>_<time>.pt``."""
    base = Path(str(config.dir).split("+")[0]) if config.dir else Path.cwd()
    stamp = datetime.now().strftime("%Y_%m_%d_%H_%M_%S")
    return (
        base
        / "models"
        / (
            f"cellseg_{config.architecture}_nchan{config.nchan}_nclasses{config.nclasses}_{stamp}.pt"
        )
    )


class _CropDataset(torch.utils.data.Dataset):
    """Crops indexed by ``(epoch, i)``: each uses its own seeded RNG, so a run is reproducible
    whatever the number of worker processes, and a resumed run continues identically."""

    def __init__(
        self, items: Sequence[TrainItem], maker: CropMaker, seed: int, n_per_epoch: int
    ) -> None:
        self.items, self.maker = items, maker
        self.seed, self.n_per_epoch = seed, n_per_epoch

    def __len__(self) -> int:
        return self.n_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """Which item each crop of an epoch comes from (every item equally often)."""
        return np.random.default_rng([self.seed, epoch, 1]).permutation(
            np.resize(np.arange(len(self.items)), self.n_per_epoch)
        )

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        x, y = self.maker(self.items[int(self.order(epoch)[i])], rng)
        return torch.from_numpy(x), torch.from_numpy(y)


def _epoch_batches(
    first: int, last: int, n_per_epoch: int, batch_size: int
) -> list[list[tuple[int, int]]]:
    """Batches of ``(epoch, i)`` keys for epochs ``first..last-1``; none spans two epochs."""
    return [
        [(e, i) for i in range(s, min(s + batch_size, n_per_epoch))]
        for e in range(first, last)
        for s in range(0, n_per_epoch, batch_size)
    ]


def crops_per_epoch(config: TrainConfig, n_items: int) -> int:
    """Crops in one epoch: ``--nimg_per_epoch``, else one per sample (and augmented copy),
    at least one batch."""
    return config.nimg_per_epoch or max(n_items * (1 + config.augments), config.batch_size)


def _lr_at(config: TrainConfig, epoch_pos: float) -> float:
    """Linear warm-up, then cosine decay to 5% of the base rate (epoch_pos is fractional)."""
    base = config.learning_rate
    warm = max(0, min(config.warmup_epochs, config.n_epochs - 1))
    if warm and epoch_pos < warm:
        return base * max(epoch_pos, 0.05) / warm
    span = max(config.n_epochs - warm, 1)
    t = min(max(epoch_pos - warm, 0.0) / span, 1.0)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def _make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if config.optimizer == "radam":
        return torch.optim.RAdam(params, lr=lr, betas=(0.95, 0.999), eps=1e-8, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def compute_loss(
    config: TrainConfig, pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of the configured family and its components (as floats)."""
    from napari_cellseg import losses

    pred = pred.float()
    if config.architecture == "omni":
        loss, parts = losses.omni_loss(pred, target, config.nclasses, return_parts=True)
    elif config.architecture == "unet":
        loss, parts = losses.weighted_bce_loss(pred, target, return_parts=True)
    else:
        loss, parts = losses.dcan_loss(
            pred,
            target,
            obj_weight=config.obj_weight,
            bnd_weight=config.bnd_weight,
            final_act=config.dcan_final_act,
            return_parts=True,
        )
    return loss, {k: float(v) for k, v in parts.items()}


def model_spec(config: TrainConfig):
    """The network description for a config."""
    from napari_cellseg.models import ModelSpec

    kwargs: dict[str, Any] = {}
    if config.nbase:
        kwargs["nbase"] = tuple(config.nbase)
    return ModelSpec(
        arch=config.architecture,
        nchan=config.nchan,
        nclasses=config.nclasses,
        dim=2,
        dropout=config.dropout,
        **kwargs,
    )


def checkpoint_meta(config: TrainConfig, **extra: Any) -> dict[str, Any]:
    """Everything a prediction needs besides the weights (stored in the checkpoint)."""
    return {
        "normalization": dict(NORMALIZATION),
        "diameter": float(config.diameter),
        "channel_axis": config.channel_axis,
        "chan": config.chan,
        "chan2": config.chan2,
        "blobs": config.blobs,
        "dcan_final_act": config.dcan_final_act,
        "training": config.to_dict(),
        "package": "napari-cellseg",
        "version": __version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        **extra,
    }


def train(
    config: TrainConfig,
    items: Sequence[TrainItem] | None = None,
    val_items: Sequence[TrainItem] | None = None,
    *,
    stop: threading.Event | None = None,
    num_workers: int | None = None,
) -> Generator[Progress, None, TrainResult]:
    """Train a model; yields :class:`Progress` events and returns a :class:`TrainResult`.

    Parameters
    ----------
    config
        Training options; validated here.
    items, val_items
        Training and validation samples in memory (napari layers). ``None`` reads
        ``config.dir`` / ``config.test_dir``.
    stop
        Set it to stop after the current step; the state is saved first.
    num_workers
        Data-loader worker processes; ``None`` follows ``--dataloader/--num_workers``.
        The napari widget passes 0.

    Raises
    ------
    CellsegError
        For unusable data or options, before any file is written.
    """
    from napari_cellseg.models import build_model
    from napari_cellseg.models.checkpoint import check_compatible, load_checkpoint, save_checkpoint

    config.validate()
    model_path = Path(config.resume or config.model or default_model_path(config))
    _check_outputs(config, model_path)
    if items is None:
        if not config.dir:
            raise CellsegError("no training data: pass --dir (or --train_data)")
        items = load_items(config.dir, config)
    if val_items is None and config.test_dir:
        val_items = load_items(config.test_dir, config)
    items = list(items)
    if not items:
        raise CellsegError("no training samples")
    _warn_sparse(items)

    torch.manual_seed(config.seed)
    device = pick_device("auto" if config.use_gpu else config.device)
    amp_dtype = autocast_dtype(device, config.amp)
    spec = model_spec(config)
    model = build_model(spec)
    start_epoch = 0
    history: list[dict[str, float]] = []
    resume_ckpt = None
    if config.resume:
        resume_ckpt = load_checkpoint(config.resume)
        check_compatible(
            resume_ckpt.spec,
            nchan=spec.nchan,
            nclasses=spec.nclasses,
            dim=spec.dim,
            arch=spec.arch,
            source=config.resume,
        )
        spec = resume_ckpt.spec
        model = build_model(spec)
        model.load_state_dict(resume_ckpt.state_dict)
        start_epoch = int(resume_ckpt.epoch or 0)
        history = list(resume_ckpt.meta.get("history", []))
        _warn_schedule_change(config, resume_ckpt.meta.get("training") or {}, start_epoch)
    elif config.pretrained_model:
        from napari_cellseg.models.builtin import resolve_model

        pre = load_checkpoint(resolve_model(config.pretrained_model))
        check_compatible(
            pre.spec,
            nchan=spec.nchan,
            nclasses=spec.nclasses,
            dim=spec.dim,
            arch=spec.arch,
            source=config.pretrained_model,
        )
        spec = pre.spec
        model = build_model(spec)
        model.load_state_dict(pre.state_dict)
    model.to(device)
    channels_last = device.type == "cpu"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(config, model.parameters())
    if resume_ckpt is not None and resume_ckpt.optimizer_state:
        optimizer.load_state_dict(resume_ckpt.optimizer_state)

    model_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(_written_files(config, model_path))
    logger = _Logger(config, model_path)

    n_per_epoch = crops_per_epoch(config, len(items))
    steps_per_epoch = math.ceil(n_per_epoch / config.batch_size)
    total_steps = steps_per_epoch * config.n_epochs
    maker = CropMaker(config, augment=True)
    val_batches = _validation_batches(config, val_items)
    workers = (
        (config.num_workers if config.dataloader else 0) if num_workers is None else num_workers
    )

    step = start_epoch * steps_per_epoch
    t0 = time.perf_counter()
    elapsed_before = float(history[-1].get("elapsed_s", 0.0)) if history else 0.0
    first_step = step
    epoch = start_epoch
    last_loss, last_val = float("nan"), None
    stopped = False
    data_wait = 0.0

    def save(epoch_done: int, *, final: bool = False) -> None:
        meta = checkpoint_meta(
            config, epochs_done=epoch_done, history=history, train_loss=last_loss, val_loss=last_val
        )
        save_checkpoint(model_path, model, spec, meta, optimizer=optimizer, epoch=epoch_done)
        if config.save_each and not final:
            stem = model_path.with_name(f"{model_path.stem}_epoch_{epoch_done:04d}.pt")
            save_checkpoint(stem, model, spec, meta, optimizer=None, epoch=epoch_done)

    try:
        # One loader for the whole run: worker processes start once and keep preparing the
        # next batches while the network trains on the current one.
        loader = torch.utils.data.DataLoader(
            _CropDataset(items, maker, config.seed, n_per_epoch),
            batch_sampler=_epoch_batches(
                start_epoch, config.n_epochs, n_per_epoch, config.batch_size
            ),
            num_workers=workers,
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=4 if workers else None,
        )
        batches = iter(loader)
        for epoch in range(start_epoch, config.n_epochs):
            model.train()
            losses_epoch: list[float] = []
            parts_sum: dict[str, float] = {}
            for b in range(steps_per_epoch):
                t_wait = time.perf_counter()
                x, y = next(batches)
                data_wait += time.perf_counter() - t_wait
                lr = _lr_at(config, epoch + b / steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(
                    device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                ):
                    pred = model(x)
                loss, parts = compute_loss(config, pred, y)
                if not torch.isfinite(loss):
                    raise CellsegError(
                        f"the loss became {float(loss)} at epoch {epoch + 1}: lower "
                        f"--learning_rate (now {config.learning_rate}) and train again"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                last_loss = float(loss.detach())
                losses_epoch.append(last_loss)
                for k, v in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + v
                elapsed = time.perf_counter() - t0
                eta = elapsed / max(step - first_step, 1) * (total_steps - step)
                logger.step(step, last_loss, lr)
                yield Progress(
                    "step",
                    epoch + 1,
                    config.n_epochs,
                    step,
                    total_steps,
                    last_loss,
                    None,
                    lr,
                    eta,
                    elapsed,
                    data_wait_s=data_wait,
                )
                if stop is not None and stop.is_set():
                    raise _Stop
            mean_loss = float(np.mean(losses_epoch))
            parts_mean = {k: v / len(losses_epoch) for k, v in parts_sum.items()}
            last_val = _validate(config, model, val_batches, device, amp_dtype, channels_last)
            record = {
                "epoch": epoch + 1,
                "loss": mean_loss,
                "val_loss": last_val,
                "lr": lr,
                "elapsed_s": elapsed_before + time.perf_counter() - t0,
                **parts_mean,
            }
            history.append(record)
            logger.epoch(record)
            if (epoch + 1) % max(config.save_every, 1) == 0 or epoch + 1 == config.n_epochs:
                save(epoch + 1, final=epoch + 1 == config.n_epochs)
            elapsed = time.perf_counter() - t0
            eta = elapsed / max(step - first_step, 1) * (total_steps - step)
            yield Progress(
                "epoch",
                epoch + 1,
                config.n_epochs,
                step,
                total_steps,
                mean_loss,
                last_val,
                lr,
                eta,
                elapsed,
                parts_mean,
                data_wait,
            )
            if stop is not None and stop.is_set():
                raise _Stop
        epoch = config.n_epochs
    except (_Stop, GeneratorExit):
        stopped = True
        # Keep the last good state: whole epochs only, so that --resume continues cleanly.
        done = epoch if step % steps_per_epoch else epoch + 1
        if done > start_epoch or not model_path.exists():
            save(done)
        epoch = done
    finally:
        logger.close()
        batches = None  # shuts the loader's worker processes down
    return TrainResult(model_path, epoch, last_loss, last_val, stopped, history)


def _written_files(config: TrainConfig, model_path: Path) -> list[Path]:
    """The files a run writes atomically: the model, its yaml and per-epoch copies."""
    files = [model_path, model_path.with_suffix(".yaml")]
    if config.save_each:
        for epoch in range(1, config.n_epochs + 1):
            copy = model_path.with_name(f"{model_path.stem}_epoch_{epoch:04d}.pt")
            files += [copy, copy.with_suffix(".yaml")]
    return files


def _csv_path(config: TrainConfig, model_path: Path) -> Path:
    """The CSV log: ``--csv_log``, else ``<model>.csv``."""
    return Path(config.csv_log) if config.csv_log else model_path.with_suffix(".csv")


def _check_outputs(config: TrainConfig, model_path: Path) -> None:
    """Refuse a new run whose model, yaml or CSV log would replace existing files.

    A resumed run continues its own files.
    """
    if config.resume:
        return
    csv_path = _csv_path(config, model_path)
    if model_path.exists():
        raise CellsegError(
            f"{model_path} already exists and a new run would replace it. Continue its training "
            f"with --resume {model_path}, fine-tune it into a new file with --pretrained_model "
            f"{model_path} --model <new name>, or give --model another name. Nothing was written"
        )
    if model_path.with_suffix(".yaml").exists():
        raise CellsegError(
            f"{model_path.with_suffix('.yaml')} already exists and a new run would write the "
            "description of its model there: give --model another name. Nothing was written"
        )
    if csv_path.exists():
        raise CellsegError(
            f"the CSV log {csv_path} already exists and a new run would replace it: give "
            "--csv_log another name (or --resume the run it belongs to). Nothing was written"
        )


def _warn_schedule_change(config: TrainConfig, stored: dict[str, Any], epochs_done: int) -> None:
    """Say so when a resumed run's learning-rate schedule is not the interrupted run's."""
    import dataclasses
    import warnings

    flags = {
        "n_epochs": "--n_epochs",
        "learning_rate": "--learning_rate",
        "warmup_epochs": "--warmup_epochs",
    }
    old = {k: stored[k] for k in flags if k in stored and stored[k] != getattr(config, k)}
    if old:
        changed = [f"{flags[k]} {v} -> {getattr(config, k)}" for k, v in old.items()]
        was = _lr_at(dataclasses.replace(config, **old), epochs_done)
        now = _lr_at(config, epochs_done)
        warnings.warn(
            f"resuming after epoch {epochs_done} with {', '.join(changed)}: the learning-rate "
            f"schedule is recomputed for the new settings, so the rate goes from {was:.3g} "
            f"(the interrupted run's) to {now:.3g} at this epoch",
            stacklevel=3,
        )


def train_until(
    config: TrainConfig,
    deadline: float | None = None,
    items: Sequence[TrainItem] | None = None,
    val_items: Sequence[TrainItem] | None = None,
    *,
    on_event: Callable[[Progress], bool | None] | None = None,
    num_workers: int | None = None,
) -> TrainResult:
    """Run :func:`train` to its end, or stop it cleanly at a wall-clock deadline.

    The synchronous wrapper of the training generator for callers with a time budget (the
    demo, the benchmarks): past ``deadline`` the stop event is set, so the run ends after the
    current step and saves its state like any stopped run.

    Parameters
    ----------
    config : TrainConfig
        Training options.
    deadline : float, optional
        A :func:`time.monotonic` time; ``None`` trains for ``config.n_epochs``.
    items, val_items : sequence of TrainItem, optional
        Samples in memory, as for :func:`train`.
    on_event : callable, optional
        Called with every :class:`Progress` (e.g. to draw a progress bar); returning ``True``
        stops the run the same way as the deadline.
    num_workers : int, optional
        Data-loader worker processes, as for :func:`train`.

    Returns
    -------
    TrainResult
        The result; ``stopped`` tells whether the deadline (or ``on_event``) cut the run short.
    """
    stop = threading.Event()
    gen = train(config, items, val_items, stop=stop, num_workers=num_workers)
    try:
        while True:
            event = next(gen)
            wants_stop = on_event is not None and bool(on_event(event))
            if wants_stop or (deadline is not None and time.monotonic() > deadline):
                stop.set()
    except StopIteration as done:
        return done.value
    finally:
        gen.close()  # a no-op after the end; on an exception it saves the state


def _worker_init(_: int) -> None:
    """Data-loader worker set-up: one thread each (the main process trains), glibc tuning."""
    torch.set_num_threads(1)


class _Stop(Exception):
    """Raised inside the loop when the stop event is set."""


def _warn_sparse(items: Sequence[TrainItem]) -> None:
    import warnings

    empty = [it.name for it in items if not (it.labels > 0).any()]
    if empty:
        warnings.warn(
            f"{len(empty)} training image(s) have no labelled cells and only teach "
            f"background: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}",
            stacklevel=3,
        )


def _validation_batches(
    config: TrainConfig, val_items: Sequence[TrainItem] | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed, unaugmented validation crops (the same every epoch)."""
    if not val_items:
        return []
    maker = CropMaker(config, augment=False)
    xs, ys = [], []
    for i, item in enumerate(val_items):
        for k in range(2):
            x, y = maker(item, np.random.default_rng([config.seed, 10_000 + i, k]))
            xs.append(torch.from_numpy(x))
            ys.append(torch.from_numpy(y))
    bs = config.batch_size
    return [
        (torch.stack(xs[i : i + bs]), torch.stack(ys[i : i + bs])) for i in range(0, len(xs), bs)
    ]


@torch.no_grad()
def _validate(config, model, batches, device, amp_dtype, channels_last) -> float | None:
    if not batches:
        return None
    model.eval()
    total, n = 0.0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            pred = model(x)
        loss, _ = compute_loss(config, pred, y)
        total += float(loss) * len(x)
        n += len(x)
    model.train()
    return total / n


class _Logger:
    """TensorBoard event files and a CSV log, both beside the model by default."""

    def __init__(self, config: TrainConfig, model_path: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        tb_dir = Path(config.tb_dir) if config.tb_dir else model_path.parent / "tensorboard"
        self.tb = SummaryWriter(log_dir=str(tb_dir / model_path.stem))
        self.csv_path = _csv_path(config, model_path)
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.exists() or not config.resume
        self._csv_file = open(self.csv_path, "w" if new else "a", newline="")  # noqa: SIM115
        self._writer: csv.DictWriter | None = None
        self._new = new

    def step(self, step: int, loss: float, lr: float) -> None:
        self.tb.add_scalar("loss/train_step", loss, step)
        self.tb.add_scalar("lr", lr, step)

    def epoch(self, record: dict[str, Any]) -> None:
        e = int(record["epoch"])
        self.tb.add_scalar("loss/train", record["loss"], e)
        if record.get("val_loss") is not None:
            self.tb.add_scalar("loss/val", record["val_loss"], e)
        for k, v in record.items():
            if k not in ("epoch", "loss", "val_loss", "lr", "elapsed_s"):
                self.tb.add_scalar(f"parts/{k}", v, e)
        self.tb.flush()
        if self._writer is None:
            self._writer = csv.DictWriter(self._csv_file, fieldnames=list(record))
            if self._new:
                self._writer.writeheader()
        self._writer.writerow(
            {k: ("" if v is None else v) for k, v in record.items() if k in self._writer.fieldnames}
        )
        self._csv_file.flush()
        os.fsync(self._csv_file.fileno())

    def close(self) -> None:
        self.tb.close()
        self._csv_file.close()
