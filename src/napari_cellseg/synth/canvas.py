"""What the synthetic generators share: the seed and shape arguments, smooth random fields,
uneven illumination, camera noise and the label cleanup after drawing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as _connected_label

from napari_cellseg.qc.fixes import fix

#: How many times :func:`clean_labels` closes seams (closing one can expose a shorter one).
_SEAM_ROUNDS = 4

#: What a generator takes as ``seed``.
Seed = int | np.random.SeedSequence | np.random.Generator


def check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Return ``shape`` as two ints, refusing anything but two positive integers."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be two positive integers (Y, X), not {shape!r}")
    return int(shape[0]), int(shape[1])


class SmoothField:
    """Smooth random field with features about ``scale`` pixels across, defined on a coarse
    grid and interpolated linearly wherever it is evaluated (``field(y, x)``)."""

    def __init__(self, shape: tuple[int, int], scale: float, rng: np.random.Generator) -> None:
        self.step = max(scale / 3.0, 1.0)
        coarse = rng.standard_normal((int(shape[0] / self.step) + 4, int(shape[1] / self.step) + 4))
        self.coarse = ndi.gaussian_filter(coarse, 1.0, mode="wrap")

    def __call__(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        coords = np.stack([np.asarray(y) / self.step + 1.5, np.asarray(x) / self.step + 1.5])
        return ndi.map_coordinates(self.coarse, coords, order=1)


def window(
    shape: tuple[int, int], cx: float, cy: float, reach: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Where an object centred at ``(cx, cy)`` may draw: the image's pixels within ``reach``
    (one to two pixels more on the far sides), and their offsets from the centre.

    Returns ``(box, yy, xx)``: ``box`` the ``(rows, columns)`` slices, ``yy`` a float32 column
    and ``xx`` a float32 row of offsets (they broadcast to the box); None when the box lies
    outside the image.
    """
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, shape[0])
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    return (slice(y0, y1), slice(x0, x1)), yy, xx


def illumination(shape: tuple[int, int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Vignetting-like smooth gain field: 1 at a random centre, falling off by ``amplitude``."""
    cy, cx = rng.uniform(-0.25, 1.25, 2) * shape
    yy = (np.arange(shape[0], dtype=np.float32)[:, None] - cy) / max(shape)
    xx = (np.arange(shape[1], dtype=np.float32)[None, :] - cx) / max(shape)
    return 1.0 - rng.uniform(0.3, 1.0) * amplitude * np.minimum(xx * xx + yy * yy, 1.0)


def white(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard normal white noise, float32."""
    return rng.standard_normal(shape, dtype=np.float32)


def unit(field: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (all zeros for a constant field)."""
    centred = field - field.mean()
    return centred / max(float(centred.std()), 1e-12)


def add_noise(
    image: np.ndarray, rng: np.random.Generator, noise: float, level: float
) -> np.ndarray:
    """Camera-like noise: shot noise (variance proportional to signal) plus read noise, scaled
    so that the standard deviation at ``level`` is between half and all of ``noise * level``."""
    sigma2 = (noise * rng.uniform(0.5, 1.0) * level) ** 2
    var = 0.8 * sigma2 * np.clip(image, 0, None) / level + 0.2 * sigma2
    noisy = image + np.sqrt(var) * white(image.shape, rng)
    return np.clip(noisy, 0, None).astype(np.float32)


def clean_labels(labels: np.ndarray, *, renumber: bool = True) -> np.ndarray:
    """Make drawn labels clean ground truth, renumbered ``1..N`` (unless ``renumber`` is False:
    then each label keeps its id, as the time-lapses' track ids must).

    Each label keeps its largest 4-connected piece, and the thin background seams between
    cells that QC reports as gaps (the notches where outlines drawn almost touching meet at an
    angle) are closed with QC's own fix (:func:`napari_cellseg.qc.fix`, ``"gap"``: each seam
    pixel takes the id of its nearest cell), repeated until none is left, so that the labels pass
    :func:`napari_cellseg.qc.run_qc` without a gap warning.
    """
    labels = _largest_pieces(labels, renumber)
    for _ in range(_SEAM_ROUNDS):
        closed = fix(labels, "gap")
        if np.array_equal(closed, labels):
            break
        labels = _largest_pieces(closed, renumber)
    return labels


def _largest_pieces(labels: np.ndarray, renumber: bool = True) -> np.ndarray:
    """Keep the largest 4-connected piece of each label and renumber ``1..N`` (int32; ids kept
    unless ``renumber``)."""
    pieces = _connected_label(labels, background=0, connectivity=1)
    n_pieces = int(pieces.max())
    if n_pieces == 0:
        return np.zeros(labels.shape, dtype=np.int32)
    size = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
    owner = np.zeros(n_pieces + 1, dtype=np.int64)
    owner[pieces.ravel()] = labels.ravel()
    # Per owner, the piece with the largest size: sort by (owner, size), take the last per owner.
    ids = np.arange(1, n_pieces + 1)
    order = np.lexsort((size[ids], owner[ids]))
    last = np.r_[owner[ids][order][1:] != owner[ids][order][:-1], True]
    lookup = np.zeros(n_pieces + 1, dtype=np.int32)
    kept = ids[order][last]
    lookup[kept] = owner[kept] if not renumber else np.arange(1, len(kept) + 1, dtype=np.int32)
    return lookup[pieces]
