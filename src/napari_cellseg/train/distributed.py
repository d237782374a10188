"""Training on several processes: ``torchrun`` ranks joined by DistributedDataParallel.

>>> with session(config):              # doctest: +SKIP
...     result = train_until(config)    # every rank runs the same run

A run of K ranks with ``--batch_size B`` is one run of global batch K x B: each step, rank ``r``
trains on the crops ``r, r + K, ...`` of the global batch that one process with
``--batch_size K*B`` would take, DDP averages the gradients, and the batch-norm statistics are
those of the global batch (:class:`CpuSyncBatchNorm` on CPUs, torch's ``SyncBatchNorm`` on
CUDA). ``--learning_rate`` is the rate of that global step, not rescaled with K. Only rank 0
writes (model, yaml, logs, TensorBoard); every rank reads the same ``--resume`` checkpoint.
Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) every function here is the
single-process identity.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.runtime import pick_device
from napari_cellseg.train.logs import Logger

T = TypeVar("T")

#: The environment variables ``torchrun`` gives each rank.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """Whether this process is a rank started by ``torchrun`` (``WORLD_SIZE`` is set)."""
    return "WORLD_SIZE" in os.environ


def active() -> bool:
    """Whether a process group of more than one rank is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of ranks (1 outside a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes the run's files: rank 0, or the only process."""
    return rank() == 0


def default_processes() -> int:
    """Ranks for ``--ddp`` without a number and ``--dataparallel``: one per GPU, else one per
    CPU core of this process."""
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torchrun_command(argv: Sequence[str], processes: int) -> list[str]:
    """The ``torchrun`` command that runs ``cellseg <argv>`` on ``processes`` ranks here.

    Parameters
    ----------
    argv : sequence of str
        The ``cellseg`` arguments, subcommand first (``["train", "--dir", ...]``).
    processes : int
        Ranks on this machine (``--nproc_per_node``).

    Returns
    -------
    list of str
        ``python -m torch.distributed.run --standalone --nproc_per_node K -m napari_cellseg.cli
        <argv>``: a free rendezvous port is chosen by torchrun.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "napari_cellseg.cli",
        *argv,
    ]


@contextlib.contextmanager
def session(config: TrainConfig) -> Iterator[None]:
    """Join the ``torchrun`` process group for the run, and leave it at the end.

    The backend is nccl when the run trains on CUDA (each rank on GPU ``LOCAL_RANK``), gloo
    otherwise. Outside ``torchrun``, or with a single rank, nothing happens.

    Parameters
    ----------
    config : TrainConfig
        The run's options (``--device`` picks the backend).

    Raises
    ------
    CellsegError
        When this machine has fewer GPUs than ranks for a CUDA run.
    """
    if not launched() or int(os.environ["WORLD_SIZE"]) < 2 or dist.is_initialized():
        yield
        return
    device = pick_device("auto" if config.use_gpu else config.device)
    backend = "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise CellsegError(
                f"rank {os.environ['RANK']} wants GPU {local} but this machine has "
                f"{torch.cuda.device_count()}: give --nproc_per_node (or --ddp) at most that many"
            )
        torch.cuda.set_device(local)
        backend = "nccl"
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_same_config(config: TrainConfig) -> None:
    """Refuse a run whose ranks were given different options (at set-up, before any write).

    Raises
    ------
    CellsegError
        On every rank, naming the ranks and the options that differ.
    """
    if not active():
        return
    everyone: list[Any] = [None] * world_size()
    dist.all_gather_object(everyone, config.to_dict())
    first = everyone[0]
    for other, theirs in enumerate(everyone):
        differ = sorted(k for k in first if theirs.get(k) != first[k])
        if differ:
            flags = ", ".join(f"--{k} {first[k]!r} vs {theirs.get(k)!r}" for k in differ[:5])
            raise CellsegError(
                f"the torchrun ranks disagree on the training options: rank 0 and rank {other} "
                f"differ in {flags}. Start every rank with the same command line and options "
                "file (relative paths from the same folder). Nothing was written"
            )


def from_rank_zero(value: T) -> T:
    """Rank 0's ``value`` on every rank (e.g. the default model name, which holds a time)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def failing_together() -> Iterator[None]:
    """Raise a :class:`CellsegError` met on one rank on every rank, so that none waits forever.

    Wrap a set-up that ends in a collective step; the ranks compare outcomes at the exit.
    """
    problem: str | None = None
    try:
        yield
    except CellsegError as exc:
        problem = str(exc)
        if not active():
            raise
    if not active():
        return
    problems: list[Any] = [None] * world_size()
    dist.all_gather_object(problems, problem)
    for other, text in enumerate(problems):
        if text is not None:
            raise CellsegError(text if other == rank() else f"rank {other}: {text}")


def share(batches: Sequence[Sequence[T]]) -> list[list[T]]:
    """This rank's part of each global batch: items ``rank, rank + K, ...``."""
    r, k = rank(), world_size()
    return [list(batch[r::k]) for batch in batches]


def average(values: Sequence[float]) -> list[float]:
    """The mean of each value over the ranks (the values themselves in one process)."""
    if not active():
        return list(values)
    return [v / world_size() for v in total(values)]


def total(values: Sequence[float]) -> list[float]:
    """The sum of each value over the ranks (the values themselves in one process)."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


class CpuSyncBatchNorm(torch.nn.BatchNorm2d):
    """Batch norm synchronised over the ranks on CPUs, where torch's ``SyncBatchNorm`` (and
    DDP with it) refuses to run: in training the per-channel sums are added over the ranks
    with the differentiable ``all_reduce`` of torch's functional collectives, so that K ranks
    normalise like one process on the global batch. Evaluation (running statistics) and a
    single process are plain batch norm. 2D and 3D inputs."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.ndim not in (4, 5):
            raise ValueError(f"expected a 4D or 5D input, got {x.ndim}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` with the statistics of every rank's batch (training), or the
        running statistics (evaluation)."""
        if not (self.training and active()):
            return super().forward(x)
        from torch.distributed._functional_collectives import all_reduce

        dims = [0, *range(2, x.ndim)]
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32)
        sums = all_reduce(torch.cat([xf.sum(dims), count]), "sum", dist.group.WORLD)
        n = sums[-1]
        mean = sums[:-1] / n
        shape = (1, -1, *(1,) * (x.ndim - 2))
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims), "sum", dist.group.WORLD) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
                self.running_mean.lerp_(mean.detach(), float(m))
                self.running_var.lerp_(var.detach() * n / (n - 1), float(m))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def parallel(model: torch.nn.Module, device: torch.device, seed: int) -> torch.nn.Module:
    """``model`` wrapped for the ranks: global-batch batch norm, DistributedDataParallel, and
    a torch seed per rank (dropout masks differ between ranks). ``model`` itself in one process.

    The batch-norm layers of ``model`` are converted in place; its parameters, buffers and
    ``state_dict`` keys stay those of ``model``, so it is still the one to save.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(seed + rank())
    if device.type == "cuda":
        if torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) is not model:
            raise TypeError("the model to train must not itself be a batch-norm layer")
        return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()])
    for module in model.modules():
        if type(module) in (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d):
            module.__class__ = CpuSyncBatchNorm  # the same fields, its own forward
    return DistributedDataParallel(model)


class SilentLogger(Logger):
    """The logger of ranks other than 0: they write no logs."""

    def __init__(self) -> None:
        pass

    def step(self, step: int, loss: float, lr: float) -> None:
        """Nothing: rank 0 logs the step."""

    def epoch(self, record: dict[str, Any]) -> None:
        """Nothing: rank 0 logs the epoch."""

    def close(self) -> None:
        """Nothing to close."""


def logger(config: TrainConfig, model_path: Path) -> Logger:
    """The run's :class:`Logger` on rank 0, a :class:`SilentLogger` on the others."""
    return Logger(config, model_path) if is_main() else SilentLogger()
