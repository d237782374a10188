"""Resampling through a coordinate map: the one warp every augmentation uses.

A :class:`Sampler` gathers each output pixel from the input at its own ``(y, x)`` position
(nearest neighbour or bilinear), folding positions outside the input back in by reflection or
by repeating the edge. It is built once per transform and applied to the image, the labels
and any extra maps, so they stay aligned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

#: How positions outside the input are filled (see :func:`_fold`).
BorderMode = Literal["reflect", "nearest"]


def _fold(index: np.ndarray, n: int, mode: BorderMode) -> np.ndarray:
    """Bring integer indices back into ``[0, n)``, in place (the argument is returned).

    ``reflect`` is the half-sample symmetric extension ``d c b a | a b c d | d c b a`` (scipy's
    ``mode='reflect'``, OpenCV's ``BORDER_REFLECT``); ``nearest`` repeats the edge pixel
    (OpenCV's ``BORDER_REPLICATE``).
    """
    if index.min() >= 0 and index.max() < n:
        return index
    if mode == "nearest":
        return np.clip(index, 0, n - 1, out=index)
    period = 2 * n
    np.mod(index, period, out=index)
    return np.subtract(period - 1, index, out=index, where=index >= n)


class Sampler:
    """Samples (..., Y, X) arrays at the input positions ``(cy, cx)`` of an output grid.

    Parameters
    ----------
    cy, cx
        float32 input row and column coordinates, one per output pixel.
    in_shape
        (Y, X) of the arrays to sample.
    mode
        How positions outside the input are filled, see `_fold`.
    """

    def __init__(
        self, cy: np.ndarray, cx: np.ndarray, in_shape: tuple[int, int], mode: BorderMode
    ) -> None:
        self.cy, self.cx = cy, cx
        self.in_shape = in_shape
        self.mode = mode
        self._nearest: np.ndarray | None = None
        self._linear: tuple[list[tuple[int, np.ndarray]], np.ndarray, np.ndarray] | None = None

    def _nearest_index(self) -> np.ndarray:
        # In-place arithmetic: fewer large temporaries (allocating and freeing many of them is
        # what costs most here, through page faults after glibc returns memory to the system).
        if self._nearest is None:
            ny, nx = self.in_shape
            rounded = self.cy + np.float32(0.5)
            iy = _fold(np.floor(rounded, out=rounded).astype(np.intp), ny, self.mode)
            np.add(self.cx, np.float32(0.5), out=rounded)
            ix = _fold(np.floor(rounded, out=rounded).astype(np.intp), nx, self.mode)
            iy *= nx
            iy += ix
            self._nearest = iy
        return self._nearest

    def _linear_plan(self) -> tuple[list[tuple[int, np.ndarray]], np.ndarray, np.ndarray]:
        """Corners as ``(shift, index)``: value = ``flat_channel[shift:].take(index)``."""
        if self._linear is None:
            ny, nx = self.in_shape
            fy, fx = np.floor(self.cy), np.floor(self.cx)
            wy, wx = self.cy - fy, self.cx - fx
            iy, ix = fy.astype(np.intp), fx.astype(np.intp)
            inside = iy.min() >= 0 and iy.max() < ny - 1 and ix.min() >= 0 and ix.max() < nx - 1
            if inside:  # all four neighbours exist: one index array, shifted views
                iy *= nx
                iy += ix
                corners = [(0, iy), (1, iy), (nx, iy), (nx + 1, iy)]
            else:  # fold each neighbour's row and column into the image separately
                row1 = _fold(iy + 1, ny, self.mode)
                row1 *= nx
                row0 = _fold(iy, ny, self.mode)
                row0 *= nx
                col1 = _fold(ix + 1, nx, self.mode)
                col0 = _fold(ix, nx, self.mode)
                top_left, top_right, bottom_left = row0 + col0, row0 + col1, row1 + col0
                row1 += col1
                corners = [(0, top_left), (0, top_right), (0, bottom_left), (0, row1)]
            self._linear = (corners, wy, wx)
        return self._linear

    def sample(self, array: np.ndarray, order: int) -> np.ndarray:
        """Resample ``array`` (2D or (C, Y, X)) with interpolation order 0 or 1.

        Order 0 keeps the dtype; order 1 returns float32.
        """
        if array.shape[-2:] != self.in_shape:
            raise ValueError(f"array of shape {array.shape} does not end in {self.in_shape}")
        lead = array.shape[:-2]
        flat = array.reshape(-1, self.in_shape[0] * self.in_shape[1])
        if order == 0:
            out = flat.take(self._nearest_index(), axis=1)
        elif order == 1:
            corners, wy, wx = self._linear_plan()
            out = np.empty((flat.shape[0], *wy.shape), dtype=np.float32)
            for c, channel in enumerate(flat.astype(np.float32, copy=False)):
                top, right, bottom, far = (channel[s:].take(i) for s, i in corners)
                right -= top  # top row: top + wx * (right - top)
                right *= wx
                top += right
                far -= bottom  # bottom row
                far *= wx
                bottom += far
                bottom -= top  # between the rows
                bottom *= wy
                np.add(top, bottom, out=out[c])
        else:
            raise ValueError(f"interpolation order must be 0 or 1, got {order}")
        return out.reshape(*lead, *out.shape[1:])


def affine_sampler(
    matrix: np.ndarray,
    offset: np.ndarray,
    out_shape: tuple[int, int],
    in_shape: tuple[int, int],
    mode: BorderMode,
) -> Sampler:
    """Sampler for ``input_yx = matrix @ output_yx + offset`` (scipy's ``affine_transform``)."""
    oy = np.arange(out_shape[0], dtype=np.float32)[:, None]
    ox = np.arange(out_shape[1], dtype=np.float32)[None, :]
    # Python floats keep the coordinate arithmetic in float32 (NEP 50).
    (m00, m01), (m10, m11) = matrix.tolist()
    off_y, off_x = (float(v) for v in offset)
    cy = (m00 * oy + off_y) + m01 * ox
    cx = (m10 * oy + off_x) + m11 * ox
    return Sampler(cy, cx, in_shape, mode)


def centred_sampler(
    matrix: np.ndarray,
    in_shape: tuple[int, int],
    mode: BorderMode,
    shift: Sequence[float] | np.ndarray = (0.0, 0.0),
) -> Sampler:
    """Same-shape warp about the image centre: ``input = c + matrix @ (output - c) + shift``."""
    centre = (np.asarray(in_shape, dtype=float) - 1) / 2
    offset = centre + np.asarray(shift, dtype=float) - matrix @ centre
    return affine_sampler(matrix, offset, in_shape, in_shape, mode)


def rotation(theta: float) -> np.ndarray:
    """The 2 x 2 matrix of a rotation by ``theta`` radians."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])
