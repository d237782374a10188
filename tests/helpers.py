"""Helpers shared by test modules: test files on disk and tiny training runs.

Importable as ``helpers`` from any test: ``tests/`` is on ``sys.path`` because pytest puts the
folder of ``tests/conftest.py`` there (the tests are not a package).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from napari_cellseg import synth
from napari_cellseg.config import TrainConfig

#: The ``cellseg train`` options of a tiny model on 64 x 64 crops (seconds per epoch on a CPU).
TINY_TRAIN_OPTIONS = ("--tyx", "64,64", "--batch_size", "2", "--nbase", "8,16,32")


def save(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` as it is, creating the folders: PNG through PIL, else TIFF.

    Parameters
    ----------
    path : pathlib.Path
        Destination; a ``.png`` suffix writes a PNG, anything else a grey TIFF.
    array : numpy.ndarray
        The pixels, in the dtype the file should hold.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(array).save(path)
    else:
        tifffile.imwrite(path, array, photometric="minisblack")
    return path


def tiny_config(model: Path, **options: Any) -> TrainConfig:
    """Training options for a tiny network that learns synthetic cells in seconds on a CPU.

    Parameters
    ----------
    model : pathlib.Path
        Where the model is saved.
    **options
        Further :class:`~napari_cellseg.config.TrainConfig` options (``n_epochs``,
        ``architecture``, ...); they may replace the tiny defaults.

    Returns
    -------
    TrainConfig
        64 x 64 crops in batches of 4, 8 crops an epoch, ``nbase=(8, 16, 32)``, full precision,
        one warm-up epoch and seed 3, unless ``options`` say otherwise.
    """
    tiny: dict[str, Any] = dict(
        tyx=(64, 64),
        batch_size=4,
        nimg_per_epoch=8,
        nbase=(8, 16, 32),
        amp="off",
        warmup_epochs=1,
        seed=3,
    )
    return TrainConfig(**{**tiny, "model": str(model), **options})


def nuclei_folders(root: Path, *, val_seed: int) -> tuple[Path, Path]:
    """Write a training folder (2 synthetic nuclei images, seed 0) and a validation folder
    (1 image, ``val_seed``) of 64 x 64 pairs in the Omnipose layout.

    Parameters
    ----------
    root : pathlib.Path
        Gets ``train/`` and ``val/``.
    val_seed : int
        Seed of the validation image.

    Returns
    -------
    train, val : pathlib.Path
        The two folders.
    """
    train, val = root / "train", root / "val"
    synth.make_dataset(train, kind="nuclei", n=2, shape=(64, 64), seed=0)
    synth.make_dataset(val, kind="nuclei", n=1, shape=(64, 64), seed=val_seed)
    return train, val


def tiny_train_argv(train: Path, model: Path, *options: str) -> list[str]:
    """The ``cellseg train`` command line of a tiny model (:data:`TINY_TRAIN_OPTIONS`).

    Parameters
    ----------
    train : pathlib.Path
        The training folder (``--dir``).
    model : pathlib.Path
        Where the model is saved (``--model``).
    *options : str
        Further command-line words (``"--n_epochs", "2"``).

    Returns
    -------
    list of str
        The arguments for :func:`napari_cellseg.cli.main`.
    """
    return ["train", "--dir", str(train), *TINY_TRAIN_OPTIONS, "--model", str(model), *options]


def disc(shape: tuple[int, int], centre: tuple[float, float], r: float) -> np.ndarray:
    """Boolean disc of radius ``r`` (pixels) at ``centre`` in an array of ``shape``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r
