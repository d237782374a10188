"""The training loop: a generator of progress events shared by the CLI and the napari widget.

>>> gen = train(config)                 # doctest: +SKIP
>>> for event in gen: print(event.loss)  # doctest: +SKIP

The generator yields a :class:`Progress` after every optimiser step and at the end of every
epoch, and returns a :class:`TrainResult`. Stopping is cooperative: set ``stop`` (a
``threading.Event``) or close the generator; either way the current state is saved as the
last good checkpoint and the run can be continued with ``--resume``. The parts it strings
together: :func:`~napari_cellseg.train.setup.set_up` and
:class:`~napari_cellseg.train.trainer.Trainer` (step, epoch, validation, saving).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from napari_cellseg.config import TrainConfig
from napari_cellseg.train import distributed
from napari_cellseg.train.samples import TrainItem
from napari_cellseg.train.setup import set_up
from napari_cellseg.train.trainer import Progress, Trainer


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run produced."""

    model_path: Path
    epochs_done: int
    final_loss: float
    val_loss: float | None
    stopped: bool
    history: list[dict[str, float]]


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

    Under ``torchrun`` (inside :func:`~napari_cellseg.train.distributed.session`) every rank
    runs this generator: the same events, only rank 0 writing.

    Raises
    ------
    CellsegError
        For unusable data or options, before any file is written.
    """
    run = set_up(config, items, val_items)
    trainer = Trainer(run, distributed.logger(config, run.model_path))
    epoch, stopped, batches = run.start_epoch, False, None
    try:
        batches = iter(trainer.loader(num_workers))
        for epoch in range(run.start_epoch, config.n_epochs):
            for event in trainer.epoch(epoch, batches):
                yield event
                if stop is not None and stop.is_set():
                    raise _Stop
        epoch = config.n_epochs
    except (_Stop, GeneratorExit):
        stopped = True
        epoch = trainer.save_stopped(epoch)
    finally:
        trainer.logger.close()
        batches = None  # shuts the loader's worker processes down
    return TrainResult(
        run.model_path, epoch, trainer.last_loss, trainer.last_val, stopped, run.history
    )


class _Stop(Exception):
    """Raised inside the loop when the stop event is set."""


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
