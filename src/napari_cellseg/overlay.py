"""Outline overlays a person can look at (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def outline_rgb(
    image: np.ndarray, labels: np.ndarray, *, colour: tuple[int, int, int] = (255, 220, 0)
) -> np.ndarray:
    """Greyscale image with label outlines drawn in ``colour``.

    Parameters
    ----------
    image
        (Y, X) or (C, Y, X); multichannel images are shown as their channel mean.
    labels
        (Y, X) instance labels.

    Returns
    -------
    numpy.ndarray
        uint8 (Y, X, 3).
    """
    from skimage.segmentation import find_boundaries

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=0)
    lo, hi = np.percentile(img, [1, 99.8])
    grey = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[find_boundaries(labels, mode="inner")] = colour
    return rgb


def save_outline_png(path: str | Path, image: np.ndarray, labels: np.ndarray) -> Path:
    """Write :func:`outline_rgb` as a PNG (atomically) and return its path."""
    from PIL import Image

    from napari_cellseg.io.outputs import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(outline_rgb(image, labels)).save(tmp, format="PNG")
    return path
