"""What the time-lapse simulations share: per-cell columns, cell-cycle lengths, the geometry
table's dtype."""

from __future__ import annotations

import numpy as np

#: Per cell and frame, what the simulation drew (:attr:`Timelapse.cells`). Positions are
#: ``(y, x)`` in the frame's pixels; ``angle`` is the long axis' direction (radians, from +x
#: towards +y); ``length`` / ``width`` the full axes (nuclei: the ellipse's, before the outline
#: harmonics); the poles are the rod's tips (NaN for nuclei).
CELL_DTYPE = np.dtype(
    [
        ("t", np.int32),
        ("id", np.int32),
        ("y", np.float64),
        ("x", np.float64),
        ("angle", np.float64),
        ("length", np.float64),
        ("width", np.float64),
        ("old_pole", np.float64, (2,)),
        ("new_pole", np.float64, (2,)),
    ]
)


def _cycle_lengths(cycle: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Cell-cycle lengths in frames, within 20 % of ``cycle`` (at least 2)."""
    return np.maximum(np.round(cycle * rng.uniform(0.8, 1.2, n)), 2).astype(np.int64)


class _Cells:
    """Columns of per-cell state (one row per living cell) and the ids they carry."""

    #: Names of the per-cell arrays (first axis: the cells).
    COLUMNS: tuple[str, ...] = ("ids", "parents", "x", "y", "angle", "anchor")
    ids: np.ndarray
    parents: np.ndarray
    anchor: np.ndarray

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.next_id = 1

    @property
    def n(self) -> int:
        return len(self.ids)

    def new_ids(self, n: int) -> np.ndarray:
        """``n`` ids never used before."""
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        return ids

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (a boolean mask or indices) of every column."""
        for name in self.COLUMNS:
            setattr(self, name, getattr(self, name)[rows])

    def extend(self, **columns: np.ndarray) -> None:
        """Append new cells (every column given)."""
        assert set(columns) == set(self.COLUMNS)
        for name in self.COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), columns[name]]))

    def texture_coords(
        self, raw: np.ndarray, centre_x: np.ndarray, centre_y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where each cell pixel samples the movie's texture: the cell's anchor plus the pixel's
        offset from the cell's centre, so that the texture moves with the cell."""
        inside = np.flatnonzero(raw.ravel())
        k = raw.ravel()[inside] - 1
        y, x = np.unravel_index(inside, raw.shape)
        return inside, np.stack(
            [self.anchor[k, 1] + y - centre_y[k], self.anchor[k, 0] + x - centre_x[k]]
        )
