"""Dataset discovery: the convention of a folder, and its samples found by that convention."""

from __future__ import annotations

import os
from pathlib import Path

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets._listing import natural_key
from napari_cellseg.io.datasets.clb import discover_clb
from napari_cellseg.io.datasets.ctc import ctc_sequences, discover_ctc
from napari_cellseg.io.datasets.delta import discover_delta
from napari_cellseg.io.datasets.omnipose import discover_omnipose
from napari_cellseg.io.datasets.samples import Dataset

CONVENTIONS = ("omnipose", "delta", "clb", "ctc")


def discover(
    path: str | os.PathLike,
    convention: str = "auto",
    *,
    img_filter: str = "",
    mask_filter: str = "_masks",
    look_one_level_down: bool = False,
    require_masks: bool = True,
) -> Dataset:
    """Find the samples of a dataset folder.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder; relative paths are resolved against the working directory.
    convention : str
        ``'auto'`` (see :func:`detect_convention`), ``'omnipose'``, ``'delta'``, ``'clb'`` or
        ``'ctc'``.
    img_filter : str
        Omnipose: suffix of image stems (``'_img'`` for ``A_img.tif``); other files are
        ignored.
    mask_filter : str
        Omnipose: suffix of mask stems.
    look_one_level_down : bool
        Omnipose: also take pairs from the immediate subfolders.
    require_masks : bool
        True (training): an image without a mask is an error. False (prediction): it becomes
        a sample with ``mask=None``.

    Returns
    -------
    Dataset
        At least one sample.

    Raises
    ------
    CellsegError
        If the folder is missing or holds no usable sample, a layout folder is missing,
        names are ambiguous, images lack masks (``require_masks``), or CLB page counts differ.
    """
    root = _resolve_folder(path)
    if convention == "auto":
        convention = detect_convention(root)
    if convention not in CONVENTIONS:
        raise CellsegError(
            f"unknown dataset convention {convention!r}; use one of auto, {', '.join(CONVENTIONS)}"
        )
    if convention == "omnipose":
        dataset = discover_omnipose(
            root, img_filter, mask_filter, look_one_level_down, require_masks
        )
    else:
        finder = {"delta": discover_delta, "clb": discover_clb, "ctc": discover_ctc}
        dataset = finder[convention](root, require_masks)
    dataset.samples.sort(key=lambda s: natural_key(s.name))
    return dataset


def detect_convention(path: str | os.PathLike) -> str:
    """Guess a dataset folder's convention from its structure.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder.

    Returns
    -------
    str
        ``'delta'`` if it has ``img/`` and ``seg/``; ``'clb'`` if it has ``images/`` and
        ``labels/``; ``'ctc'`` if it is, holds or belongs to a Cell Tracking Challenge
        sequence with ground truth (``01/tNNN.tif`` + ``01_GT/``); otherwise ``'omnipose'``
        (a sequence without ``_GT`` needs ``convention='ctc'``).
    """
    root = Path(path)
    if (root / "img").is_dir() and (root / "seg").is_dir():
        return "delta"
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "clb"
    if any(gt.is_dir() for _, gt in ctc_sequences(root)):
        return "ctc"
    return "omnipose"


def _resolve_folder(path: str | os.PathLike) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        where = "" if root.is_absolute() else f" (relative to {Path.cwd()})"
        raise CellsegError(f"dataset folder {root} does not exist{where}; check the path")
    if not root.is_dir():
        raise CellsegError(f"{root} is a file; give the folder that holds the dataset")
    return root.resolve()
