"""CLB's trimming to a square (``--trim_method``) and its affine copies (``--augments``)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from napari_cellseg.augment.resample import centred_sampler, rotation
from napari_cellseg.errors import CellsegError

TRIM_METHODS = ("resize", "padding", "reflect")


def _resize(arr: np.ndarray, size: int, order: int) -> np.ndarray:
    """Separable resize of the last two axes to size x size, pixel centres aligned, edge pixels
    repeated; order 0 (nearest, keeps the dtype) or 1 (bilinear, float32)."""
    axes = []
    for n in arr.shape[-2:]:
        pos = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
        if order == 0:
            axes.append(np.floor(pos + 0.5).astype(np.intp))
        elif order == 1:
            low = np.floor(pos).astype(np.intp)
            axes.append((low, np.minimum(low + 1, n - 1), (pos - low).astype(np.float32)))
        else:
            raise ValueError(f"interpolation order must be 0 or 1, got {order}")
    if order == 0:
        return arr[..., axes[0][:, None], axes[1]]
    (y0, y1, wy), (x0, x1, wx) = axes
    src = arr.astype(np.float32, copy=False)
    top, bottom = src[..., y0, :], src[..., y1, :]
    rows = top + wy[:, None] * (bottom - top)
    left, right = rows[..., x0], rows[..., x1]
    return left + wx * (right - left)


def trim(image: np.ndarray, im_dim: int, method: str, *, order: int) -> np.ndarray:
    """Bring an image or label matrix to ``im_dim x im_dim`` (CLB's ``--trim_method``).

    - ``resize``: resample to the new size (pixel centres aligned, edge pixels repeated), with
      interpolation ``order`` (0 for label matrices: nearest, so ids stay integral; 1 gives a
      float32 result).
    - ``padding``: pad with zeros, the image centred.
    - ``reflect``: pad by mirroring at the edges (``d c b a | a b c d``, OpenCV's
      ``BORDER_REFLECT``); mirrored cells keep their label ids, as in CLB.

    For ``padding`` and ``reflect`` an axis longer than ``im_dim`` is centre-cropped (trimming
    takes no random generator, so the same sample always gives the same array; the random
    augmentation comes afterwards). ``order`` only matters for ``resize``; these two keep the
    dtype.

    Parameters
    ----------
    image
        (Y, X) or (C, Y, X).
    im_dim
        Output height and width.
    method
        One of ``resize``, ``padding``, ``reflect``.
    order
        Interpolation order for ``resize``: 0 (labels) or 1 (images).

    Returns
    -------
    numpy.ndarray
        Array of shape (..., im_dim, im_dim).

    Raises
    ------
    CellsegError
        For an unknown method.
    """
    if method not in TRIM_METHODS:
        raise CellsegError(
            f"unknown trim method {method!r}; choose one of {', '.join(TRIM_METHODS)}"
        )
    arr = np.asarray(image)
    in_shape = (arr.shape[-2], arr.shape[-1])
    if method == "resize":
        return _resize(arr, im_dim, order)
    starts = [max(0, (n - im_dim) // 2) for n in in_shape]
    arr = arr[..., starts[0] : starts[0] + im_dim, starts[1] : starts[1] + im_dim]
    pads = [((im_dim - n) // 2, im_dim - n - (im_dim - n) // 2) for n in arr.shape[-2:]]
    pad_width = [(0, 0)] * (arr.ndim - 2) + pads
    if method == "padding":
        return np.pad(arr, pad_width, mode="constant")
    return np.pad(arr, pad_width, mode="symmetric")


def _clb_matrix(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Forward matrix and translation fraction of one CLB (imgaug) augmentation."""
    signs = np.where(rng.random(2) < 0.5, -1.0, 1.0)  # vertical, horizontal flip
    forward = np.diag(signs)
    if rng.random() < 0.5:
        forward = rng.uniform(0.8, 1.2) * forward
    translate = rng.uniform(-0.2, 0.2, size=2) if rng.random() < 0.5 else np.zeros(2)
    if rng.random() < 0.5:
        forward = rotation(math.radians(rng.uniform(0.0, 359.0))) @ forward
    if rng.random() < 0.5:
        shear = math.tan(math.radians(rng.uniform(-10.0, 10.0)))
        forward = np.array([[1.0, 0.0], [shear, 1.0]]) @ forward
    return forward, translate


def clb_augment(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, n_augments: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield a sample as itself and then as ``n_augments`` augmented copies (CLB's ``--augments``).

    Each copy: a flip of each axis with p = 0.5, then each with p = 0.5 a scale ~ U(0.8, 1.2),
    a translation ~ U(-20 %, 20 %) of each side, a rotation ~ U(0, 359) degrees and a shear
    ~ U(-10, 10) degrees, combined into one affine about the image centre (reflected at the
    edges). The image is resampled bilinearly, the labels by nearest neighbour. CLB's
    additional piecewise-affine distortion is not reproduced.

    Parameters
    ----------
    image
        (Y, X) or (C, Y, X).
    labels
        (Y, X) label matrix.
    rng
        Source of all randomness.
    n_augments
        Number of augmented copies after the original.

    Yields
    ------
    tuple of numpy.ndarray
        ``(image, labels)``: first copies of the originals, then float32 images and labels of
        the input dtype, all of the input shapes.
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.shape[-2:] != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in (Y, X)")
    yield image.copy(), labels.copy()
    shape = (labels.shape[0], labels.shape[1])
    for _ in range(n_augments):
        forward, translate = _clb_matrix(rng)
        # input = c + forward^-1 (output - c - t)
        inverse = np.linalg.inv(forward)
        shift = -inverse @ (translate * np.asarray(shape))
        sampler = centred_sampler(inverse, shape, "reflect", shift)
        yield sampler.sample(image, 1), sampler.sample(labels, 0)
