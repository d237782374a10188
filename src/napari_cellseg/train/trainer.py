"""One training run's work once it is set up: the optimiser step, the epoch, validation, saving.

:class:`Trainer` holds the state that runs through the steps (step count, clocks, last losses);
:func:`napari_cellseg.train.loop.train` strings its epochs together. A distributed run or a
new family changes a part (the step, the loader, the loss) without touching the others.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import DivergedError
from napari_cellseg.families import get_family
from napari_cellseg.train import distributed
from napari_cellseg.train.batches import CropDataset, epoch_batches, validation_batches, worker_init
from napari_cellseg.train.logs import Logger
from napari_cellseg.train.setup import RunSetup, checkpoint_meta, lr_at


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


def compute_loss(
    config: TrainConfig, pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of the configured family and its components (as floats)."""
    loss, parts = get_family(config.architecture).loss(pred.float(), target, config)
    return loss, {k: float(v) for k, v in parts.items()}


class Trainer:
    """The steps and epochs of a run set up by :func:`~napari_cellseg.train.setup.set_up`.

    Parameters
    ----------
    run
        The set-up run (model, optimiser, samples, where to save).
    logger
        Where steps and epochs are logged.
    """

    def __init__(self, run: RunSetup, logger: Logger) -> None:
        self.run = run
        self.config = run.config
        self.logger = logger
        self.step = run.start_epoch * run.steps_per_epoch
        self.first_step = self.step
        self.t0 = time.perf_counter()
        self.elapsed_before = float(run.history[-1].get("elapsed_s", 0.0)) if run.history else 0.0
        self.data_wait = 0.0
        self.last_loss: float = float("nan")
        self.last_val: float | None = None
        self.val_batches = validation_batches(self.config, run.val_items)
        self.net = distributed.parallel(run.model, run.device, self.config.seed)

    def loader(self, num_workers: int | None = None) -> torch.utils.data.DataLoader:
        """One loader for the whole run: worker processes start once and keep preparing the
        next batches while the network trains on the current one. ``num_workers`` ``None``
        follows ``--dataloader/--num_workers``. Under ``torchrun`` it loads this rank's share
        of each global batch."""
        run = self.run
        if num_workers is None:
            num_workers = self.config.num_workers if self.config.dataloader else 0
        return torch.utils.data.DataLoader(
            CropDataset(
                run.items,
                get_family(self.config.architecture).crop_maker(self.config, augment=True),
                self.config.seed,
                run.n_per_epoch,
            ),
            batch_sampler=distributed.share(
                epoch_batches(
                    run.start_epoch,
                    self.config.n_epochs,
                    run.n_per_epoch,
                    self.config.batch_size * distributed.world_size(),
                )
            ),
            num_workers=num_workers,
            worker_init_fn=worker_init if num_workers else None,
            prefetch_factor=4 if num_workers else None,
        )

    def optimizer_step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float, epoch: int
    ) -> tuple[float, dict[str, float]]:
        """Forward, loss, backward and update on one batch at learning rate ``lr``; the loss
        and its parts returned are the means over the ranks."""
        run = self.run
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        loss, parts = self._loss(x, y)
        mean, *part_means = distributed.average([float(loss.detach()), *parts.values()])
        parts = dict(zip(parts, part_means, strict=True))
        if not np.isfinite(mean):  # the same on every rank: all stop together
            raise DivergedError(
                f"the loss became {mean} at epoch {epoch + 1}: lower "
                f"--learning_rate (now {self.config.learning_rate}) and train again"
            )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        self.step += 1
        self.last_loss = mean
        return self.last_loss, parts

    def epoch(
        self, epoch: int, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
    ) -> Generator[Progress, None, None]:
        """Train one epoch (0-based ``epoch``): a ``"step"`` event after each step, then
        validation, the record, the save when due, and the ``"epoch"`` event."""
        run, config = self.run, self.config
        run.model.train()
        losses: list[float] = []
        parts_sum: dict[str, float] = {}
        lr = 0.0
        for b in range(run.steps_per_epoch):
            t_wait = time.perf_counter()
            x, y = next(batches)
            self.data_wait += time.perf_counter() - t_wait
            lr = lr_at(config, epoch + b / run.steps_per_epoch)
            loss, parts = self.optimizer_step(x, y, lr, epoch)
            losses.append(loss)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            self.logger.step(self.step, loss, lr)
            yield self._progress("step", epoch, loss, None, lr)
        mean_loss = float(np.mean(losses))
        parts_mean = {k: v / len(losses) for k, v in parts_sum.items()}
        self.last_val = self.validate()
        record = {
            "epoch": epoch + 1,
            "loss": mean_loss,
            "val_loss": self.last_val,
            "lr": lr,
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.t0,
            **parts_mean,
        }
        run.history.append(record)
        self.logger.epoch(record)
        last = epoch + 1 == config.n_epochs
        if (epoch + 1) % max(config.save_every, 1) == 0 or last:
            self.save(epoch + 1, final=last)
        yield self._progress("epoch", epoch, mean_loss, self.last_val, lr, parts_mean)

    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean loss over the fixed validation crops (None without validation data); under
        ``torchrun`` each rank scores its share and the sums are added over the ranks."""
        run = self.run
        if not self.val_batches:
            return None
        run.model.eval()
        total, n = 0.0, 0
        for x, y in self.val_batches[distributed.rank() :: distributed.world_size()]:
            loss, _ = self._loss(x, y, run.model)
            total += float(loss) * len(x)
            n += len(x)
        run.model.train()
        total, n = distributed.total([total, n])
        return total / n

    def _loss(
        self, x: torch.Tensor, y: torch.Tensor, net: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The network (``net``, else the trained one: DDP's under ``torchrun``) on a batch, on
        the run's device and precision, and the family's loss."""
        run = self.run
        x = x.to(run.device, non_blocking=True)
        y = y.to(run.device, non_blocking=True)
        if run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None
        ):
            pred = (net or self.net)(x)
        return compute_loss(self.config, pred, y)

    def save(self, epoch_done: int, *, final: bool = False) -> None:
        """Write the checkpoint (and, with ``--save_each``, the per-epoch copy) atomically;
        under ``torchrun`` rank 0 does, the others hold the same weights."""
        from napari_cellseg.models.checkpoint import save_checkpoint

        if not distributed.is_main():
            return
        run = self.run
        meta = checkpoint_meta(
            self.config,
            run,
            epochs_done=epoch_done,
            history=run.history,
            train_loss=self.last_loss,
            val_loss=self.last_val,
        )
        save_checkpoint(
            run.model_path, run.model, run.spec, meta, optimizer=run.optimizer, epoch=epoch_done
        )
        if self.config.save_each and not final:
            copy = run.model_path.with_name(f"{run.model_path.stem}_epoch_{epoch_done:04d}.pt")
            save_checkpoint(copy, run.model, run.spec, meta, optimizer=None, epoch=epoch_done)

    def save_stopped(self, epoch: int) -> int:
        """Keep the last good state of a stopped run: whole epochs only, so that ``--resume``
        continues cleanly. Returns the epochs done."""
        run = self.run
        done = epoch if self.step % run.steps_per_epoch else epoch + 1
        if done > run.start_epoch or not run.model_path.exists():
            self.save(done)
        return done

    def _progress(
        self,
        kind: str,
        epoch: int,
        loss: float,
        val: float | None,
        lr: float,
        parts: dict[str, float] | None = None,
    ) -> Progress:
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(self.step - self.first_step, 1) * (self.run.total_steps - self.step)
        return Progress(
            kind,
            epoch + 1,
            self.config.n_epochs,
            self.step,
            self.run.total_steps,
            loss,
            val,
            lr,
            eta,
            elapsed,
            parts or {},
            self.data_wait,
        )
