"""Synthetic datasets written to disk in the Omnipose layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from napari_cellseg.io.images import write_image, write_mask
from napari_cellseg.synth.fluorescence import nuclei
from napari_cellseg.synth.phase_contrast import bacteria


def make_dataset(
    folder: str | os.PathLike,
    kind: Literal["bacteria", "nuclei"] = "bacteria",
    n: int = 8,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> list[tuple[Path, Path]]:
    """Write ``n`` synthetic image/mask pairs in the Omnipose layout.

    Files are ``<kind>_<i:03d>.tif`` (uint16, the generator's image rounded and clipped) and
    ``<kind>_<i:03d>_masks.tif`` (uint16 labels), each written atomically with
    :func:`napari_cellseg.io.images.write_image` / :func:`~napari_cellseg.io.images.write_mask`.
    Sample ``i`` uses the ``i``-th child of ``SeedSequence(seed)``, so the files are the same
    for a seed whatever ``n`` is.

    Parameters
    ----------
    folder
        Destination folder (created if needed). Existing files of the same names are replaced.
    kind
        ``"bacteria"`` (:func:`bacteria`) or ``"nuclei"`` (:func:`nuclei`).
    n
        Number of pairs.
    shape
        Image shape ``(Y, X)``.
    seed
        Seed of the whole dataset.

    Returns
    -------
    list of tuple of pathlib.Path
        ``(image_path, mask_path)`` per sample, in order.
    """
    generators = {"bacteria": bacteria, "nuclei": nuclei}
    if kind not in generators:
        raise ValueError(f"kind must be one of {sorted(generators)}, not {kind!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        image, labels = generators[kind](shape, seed=child)
        image_path = folder / f"{kind}_{i:03d}.tif"
        mask_path = folder / f"{kind}_{i:03d}_masks.tif"
        write_image(image_path, np.clip(np.round(image), 0, 65535).astype(np.uint16))
        write_mask(mask_path, labels)
        pairs.append((image_path, mask_path))
    return pairs
