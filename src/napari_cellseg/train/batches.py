"""What the network trains on, batch by batch: reproducible crops, epochs, validation crops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from napari_cellseg.config import TrainConfig
from napari_cellseg.families import get_family


class CropDataset(torch.utils.data.Dataset):
    """Crops indexed by ``(epoch, i)``: each uses its own seeded RNG, so a run is reproducible
    whatever the number of worker processes, and a resumed run continues identically."""

    def __init__(
        self,
        items: Sequence[Any],
        maker: Callable[[Any, np.random.Generator], tuple[np.ndarray, np.ndarray]],
        seed: int,
        n_per_epoch: int,
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


def epoch_batches(
    first: int, last: int, n_per_epoch: int, batch_size: int
) -> list[list[tuple[int, int]]]:
    """Batches of ``(epoch, i)`` keys for epochs ``first..last-1``; none spans two epochs."""
    return [
        [(e, i) for i in range(s, min(s + batch_size, n_per_epoch))]
        for e in range(first, last)
        for s in range(0, n_per_epoch, batch_size)
    ]


def crops_per_epoch(config: TrainConfig, n_items: int, world: int = 1) -> int:
    """Crops in one epoch: ``--nimg_per_epoch``, else one per sample (and augmented copy),
    at least one (global) batch; rounded up to a multiple of the ``world`` size so that every
    rank trains on as many crops (as torch's ``DistributedSampler`` pads)."""
    n = config.nimg_per_epoch or max(n_items * (1 + config.augments), config.batch_size * world)
    return -(-n // world) * world


def worker_init(_: int) -> None:
    """Data-loader worker set-up: one thread each (the main process trains)."""
    torch.set_num_threads(1)


def validation_batches(
    config: TrainConfig, val_items: Sequence[Any] | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed, unaugmented validation crops (the same every epoch)."""
    if not val_items:
        return []
    maker = get_family(config.architecture).crop_maker(config, augment=False)
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
