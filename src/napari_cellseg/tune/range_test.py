"""The learning-rate range test: one short run with the rate rising exponentially.

The loss is recorded at every step while the learning rate climbs from ``min_lr`` to
``max_lr``; the run stops early once the (smoothed) loss has clearly diverged. The suggested
rate is a tenth of the rate at the smoothed loss minimum (Smith 2017, "Cyclical learning
rates"; the rule fastai users know), clipped into the range tried. It uses the training data
only, so it never selects on validation data, and it writes nothing that outlives it.

>>> gen = range_test(config)             # doctest: +SKIP
>>> for point in gen: print(point.lr, point.loss)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError, DivergedError

#: Weight of the newest loss in the exponential moving average (bias-corrected).
SMOOTHING = 0.1
#: The test stops once the smoothed loss exceeds this multiple of its minimum.
DIVERGENCE = 4.0


@dataclass(frozen=True)
class RangePoint:
    """One step of the range test.

    Attributes
    ----------
    step, steps
        Steps done (1-based) and planned.
    lr
        Learning rate of the step.
    loss, smoothed
        The step's training loss and its bias-corrected exponential moving average.
    """

    step: int
    steps: int
    lr: float
    loss: float
    smoothed: float


@dataclass(frozen=True)
class RangeTestResult:
    """What a range test measured.

    Attributes
    ----------
    lrs, losses, smoothed
        One value per step done.
    suggested_lr
        A tenth of ``min_loss_lr``, within the range tried.
    min_loss_lr
        The rate at the smoothed loss minimum.
    diverged_lr
        The rate at which the loss diverged (``None`` if it never did).
    seconds
        Wall time of the test, data loading included.
    stopped
        True when the caller stopped the test before its end.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float
    min_loss_lr: float
    diverged_lr: float | None
    seconds: float
    stopped: bool = False


def check_lr_range(min_lr: float, max_lr: float) -> None:
    """Refuse a learning-rate range that is empty or not positive.

    Raises
    ------
    CellsegError
        When ``min_lr`` is not positive or not below ``max_lr``.
    """
    if not (min_lr > 0 and max_lr > 0):
        raise CellsegError(f"learning rates must be positive: got {min_lr} .. {max_lr}")
    if min_lr >= max_lr:
        raise CellsegError(
            f"the learning-rate range {min_lr:g} .. {max_lr:g} is empty: the minimum must be "
            "below the maximum (e.g. --min_lr 1e-6 --max_lr 1)"
        )


def rate_at(step: int, steps: int, min_lr: float, max_lr: float) -> float:
    """The exponentially rising rate of step ``step`` (0-based) of ``steps``."""
    if steps <= 1:
        return min_lr
    return min_lr * (max_lr / min_lr) ** (step / (steps - 1))


def suggest(lrs: Sequence[float], smoothed: Sequence[float], min_lr: float) -> tuple[float, float]:
    """``(suggested_lr, min_loss_lr)`` from a range test's curve."""
    if not lrs:
        raise CellsegError("the range test made no step: give it more --steps")
    best = min(range(len(smoothed)), key=lambda i: smoothed[i])
    return max(lrs[best] / 10.0, min_lr), lrs[best]


def range_test(
    config: TrainConfig,
    items: Sequence[Any] | None = None,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 60,
    stop: threading.Event | None = None,
    num_workers: int | None = None,
) -> Generator[RangePoint, None, RangeTestResult]:
    """Run the range test; yields a :class:`RangePoint` per step, returns the result.

    Parameters
    ----------
    config
        The training options the rate is meant for (architecture, crops, batch, optimiser);
        ``learning_rate``, the schedule and the output paths are ignored.
    items
        Training samples in memory; ``None`` reads ``config.dir``.
    min_lr, max_lr
        The range the rate rises through.
    steps
        Optimiser steps (fewer if the loss diverges first).
    stop
        Set it to end the test after the current step (the result covers the steps done).
    num_workers
        Data-loader worker processes; ``None`` follows ``--dataloader/--num_workers``.

    Raises
    ------
    CellsegError
        For an empty range, fewer than 5 steps, or unusable data or options.
    """
    from napari_cellseg.train.logs import Logger
    from napari_cellseg.train.setup import set_up
    from napari_cellseg.train.trainer import Trainer

    check_lr_range(min_lr, max_lr)
    if steps < 5:
        raise CellsegError(f"the range test needs at least 5 steps, not {steps}")
    t0 = time.perf_counter()
    lrs: list[float] = []
    losses: list[float] = []
    smooth: list[float] = []
    diverged: float | None = None
    stopped = False
    with tempfile.TemporaryDirectory(prefix="cellseg_range_test_") as tmp:
        cfg = scratch_config(config, Path(tmp), "range_test")
        run = set_up(cfg, items, None)
        cfg.n_epochs = math.ceil(steps / run.steps_per_epoch)
        trainer = Trainer(run, Logger(cfg, run.model_path))
        batches = iter(trainer.loader(num_workers))
        avg = 0.0
        try:
            for i in range(steps):
                lr = rate_at(i, steps, min_lr, max_lr)
                x, y = next(batches)
                try:
                    loss, _ = trainer.optimizer_step(x, y, lr, i // run.steps_per_epoch)
                except DivergedError:
                    diverged = lr
                    break
                avg = SMOOTHING * loss + (1 - SMOOTHING) * avg
                value = avg / (1 - (1 - SMOOTHING) ** (i + 1))
                lrs.append(lr)
                losses.append(loss)
                smooth.append(value)
                yield RangePoint(i + 1, steps, lr, loss, value)
                if i >= 3 and value > DIVERGENCE * min(smooth):
                    diverged = lr
                    break
                if stop is not None and stop.is_set():
                    stopped = True
                    break
        finally:
            trainer.logger.close()
            batches = None  # shuts the loader's worker processes down
    suggested, at_min = suggest(lrs, smooth, min_lr)
    return RangeTestResult(
        lrs,
        losses,
        smooth,
        suggested,
        at_min,
        diverged,
        time.perf_counter() - t0,
        stopped,
    )


def run_range_test(
    config: TrainConfig, items: Sequence[Any] | None = None, **kwargs: Any
) -> RangeTestResult:
    """:func:`range_test` run to its end; returns the :class:`RangeTestResult`."""
    gen = range_test(config, items, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def scratch_config(config: TrainConfig, folder: Path, name: str) -> TrainConfig:
    """A copy of ``config`` that writes its model and logs into ``folder`` and starts fresh.

    Parameters
    ----------
    config : TrainConfig
        The options to copy.
    folder : pathlib.Path
        A scratch folder that the caller removes.
    name : str
        Stem of the model and log files.
    """
    return dataclasses.replace(
        config,
        model=str(folder / f"{name}.pt"),
        csv_log=str(folder / f"{name}.csv"),
        tb_dir=str(folder / "tensorboard"),
        resume=None,
        save_each=False,
        args_load_path=None,
    )
