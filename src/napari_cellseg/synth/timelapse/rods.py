"""A growing colony of phase-contrast rods for :func:`napari_cellseg.synth.timelapse`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.synth.canvas import clean_labels
from napari_cellseg.synth.phase_contrast import (
    PhaseContrast,
    _divide,
    _endpoints,
    _rasterize_rods,
)
from napari_cellseg.synth.timelapse.cells import CELL_DTYPE, _Cells


class _Bacteria(_Cells):
    """A phase-contrast microcolony of rods: elongation, division across the middle, contact
    mechanics (sliding and turning), old and new poles."""

    COLUMNS = (*_Cells.COLUMNS, "rad", "split", "half", "rate", "pole")

    def __init__(
        self,
        shape: tuple[int, int],
        n: int,
        cycle: float,
        motility: float,
        last_offset: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(rng)
        self.shape, self.cycle, self.motility = shape, cycle, motility
        self.w0 = rng.uniform(8.0, 12.0)
        self.ids = self.new_ids(n)
        self.parents = np.zeros(n, dtype=np.int64)
        self.rad = self.w0 / 2 * rng.normal(1.0, 0.05, n)
        self.split = self._division_lengths(self.rad)
        length = self.split * 2.0 ** -rng.uniform(0.05, 1.0, n)
        self.half = length / 2 - self.rad
        self.rate = self._growth_rates(n)
        self.angle = rng.uniform(0, np.pi, n)
        self.pole = rng.choice([-1.0, 1.0], n)  # old pole at centre + pole * (half + rad) * axis
        # Founders near the centre of the movie's path, so the colony stays in view.
        centre = np.array([shape[1], shape[0]]) / 2 + last_offset[::-1] / 2
        spread = 0.6 * np.sqrt(n) * float(np.mean(length)) if n else 0.0
        r, theta = spread * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
        self.x, self.y = centre[0] + r * np.cos(theta), centre[1] + r * np.sin(theta)
        self._relax(n_iter=200)
        self.anchor = np.stack([self.x, self.y], axis=-1)
        self.optics = PhaseContrast.draw(shape, self.w0, rng)

    def _division_lengths(self, rad: np.ndarray) -> np.ndarray:
        """Full length (pole to pole) at which each rod divides: 4-4.8 widths."""
        return 2 * rad * self.rng.uniform(4.0, 4.8, len(rad))

    def _growth_rates(self, n: int) -> np.ndarray:
        """Length factor per frame: each rod doubles in a cycle of 0.8-1.2 ``cycle`` frames."""
        return 2.0 ** (1.0 / (self.cycle * self.rng.uniform(0.8, 1.2, n)))

    def rods(self) -> np.ndarray:
        """Rows ``(x, y, angle, half, rad, bend)`` as :func:`~.phase_contrast._rasterize_rods`
        takes them (world coordinates)."""
        z = np.zeros(self.n)
        return np.stack([self.x, self.y, self.angle, self.half, self.rad, z], axis=-1)

    def step(self) -> None:
        """One frame later: elongate, divide the rods that reached their length, jitter, relax."""
        rng = self.rng
        length = 2 * (self.half + self.rad) * self.rate
        self.half = length / 2 - self.rad
        dividing = np.flatnonzero(length >= self.split)
        if len(dividing):
            m = len(dividing)
            first, second = np.split(_divide(self.rods()[dividing]), 2)
            daughters = np.concatenate([first, second])
            rad = daughters[:, 4]
            # The first daughter lies on the -axis side: its old pole is there (-1), its new
            # pole where the mother divided; the second the other way round.
            anchor = self.anchor[dividing]
            shift = first[:, :2] - self.rods()[dividing, :2]
            self.extend(
                ids=self.new_ids(2 * m),
                parents=np.r_[self.ids[dividing], self.ids[dividing]],
                rad=rad,
                split=self._division_lengths(rad),
                half=daughters[:, 3],
                rate=self._growth_rates(2 * m),
                angle=daughters[:, 2],
                pole=np.r_[-np.ones(m), np.ones(m)],
                x=daughters[:, 0],
                y=daughters[:, 1],
                anchor=np.concatenate([anchor + shift, anchor - shift]),
            )
            self.keep(np.setdiff1d(np.arange(self.n), dividing))
        jitter = self.motility / 3
        self.x += rng.normal(0, jitter, self.n)
        self.y += rng.normal(0, jitter, self.n)
        self.angle += rng.normal(0, 0.01, self.n)
        self._relax()

    def _relax(self, n_iter: int = 30) -> None:
        """Push overlapping rods apart: each contact is resolved by sliding and turning both
        rods, in proportion to their mobility (a rigid rod of mass ~ length); the pairs that
        may touch are listed again every few rounds."""
        for start in range(0, n_iter, 10):
            i, j = self._neighbours()
            for k in range(min(10, n_iter - start)):
                if not self._resolve(i, j):
                    if k == 0:
                        return
                    break

    def _neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of rods ``(i, j)``, ``i < j``, within 4 px of touching."""
        reach = self.half + self.rad
        i, j = np.triu_indices(self.n, 1)
        near = np.hypot(self.x[i] - self.x[j], self.y[i] - self.y[j]) < reach[i] + reach[j] + 4
        return i[near], j[near]

    def _resolve(self, i: np.ndarray, j: np.ndarray) -> bool:
        """One round of contact resolution between the pairs ``i, j``; False if none overlap."""
        if len(i) == 0:
            return False
        reach = self.half + self.rad
        mass = 2 * reach
        inertia = mass * (2 * reach) ** 2 / 12
        p0, p1 = _endpoints(self.rods())
        ci, cj = _closest_points(p0[i], p1[i], p0[j], p1[j])
        d = ci - cj
        dist = np.hypot(*d.T)
        deficit = self.rad[i] + self.rad[j] - dist
        hit = deficit > 0.05
        if not hit.any():
            return False
        i, j, d, dist, deficit = i[hit], j[hit], d[hit], dist[hit], deficit[hit]
        normal = np.stack([-np.sin(self.angle[i]), np.cos(self.angle[i])], axis=-1)
        u = np.where((dist > 1e-6)[:, None], d / np.maximum(dist, 1e-6)[:, None], normal)
        centre = np.stack([self.x, self.y], axis=-1)
        lever_i, lever_j = _cross(ci[hit] - centre[i], u), _cross(cj[hit] - centre[j], u)
        w = 1 / mass[i] + lever_i**2 / inertia[i] + 1 / mass[j] + lever_j**2 / inertia[j]
        impulse = 0.5 * (deficit + 0.05) / w  # half: a rod is pushed by several at once
        dx, dy, dtheta = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n)
        for rows, sign, lever in ((i, 1.0, lever_i), (j, -1.0, lever_j)):
            np.add.at(dx, rows, sign * impulse * u[:, 0] / mass[rows])
            np.add.at(dy, rows, sign * impulse * u[:, 1] / mass[rows])
            np.add.at(dtheta, rows, sign * impulse * lever / inertia[rows])
        self.x += dx
        self.y += dy
        self.angle += np.clip(0.5 * dtheta, -0.05, 0.05)  # rods turn less than they slide
        return True

    def render(self, offset: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
        """Labels (row + 1 per rod, 0 background) and camera image of the current frame."""
        rods = self.rods()
        rods[:, 0] -= offset[1]
        rods[:, 1] -= offset[0]
        raw, depth, radius = _rasterize_rods(self.shape, rods)
        raw = clean_labels(raw, renumber=False)
        inside, coords = self.texture_coords(raw, rods[:, 0], rods[:, 1])
        grain = np.zeros(self.shape, dtype=self.optics.grain.dtype)
        grain.ravel()[inside] = ndi.map_coordinates(
            self.optics.grain, coords, order=1, mode="mirror"
        )
        return raw, self.optics.image(raw, depth, radius, grain, self.rng, noise)

    def geometry(self, t: int, offset: np.ndarray) -> np.ndarray:
        """:data:`CELL_DTYPE` rows of the current frame, one per rod."""
        out = np.zeros(self.n, dtype=CELL_DTYPE)
        out["t"], out["id"] = t, self.ids
        y, x = self.y - offset[0], self.x - offset[1]
        out["y"], out["x"], out["angle"] = y, x, self.angle
        out["length"], out["width"] = 2 * (self.half + self.rad), 2 * self.rad
        tip = (self.half + self.rad)[:, None] * np.stack(
            [np.sin(self.angle), np.cos(self.angle)], -1
        )
        centre = np.stack([y, x], axis=-1)
        out["old_pole"] = centre + self.pole[:, None] * tip
        out["new_pole"] = centre - self.pole[:, None] * tip
        return out


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z component of the cross product of 2D vectors (rows)."""
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def _closest_points(
    p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The closest points of segments ``p0[k]-p1[k]`` and ``q0[k]-q1[k]`` (rows ``(x, y)``).

    Minimises ``|p0 + s (p1 - p0) - q0 - t (q1 - q0)|`` over ``s, t`` in [0, 1]: the unclamped
    optimum of ``s``, clamped, then the best ``t`` for it, clamped, then ``s`` again for that
    ``t`` (exact for two segments).
    """
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.maximum((d1 * d1).sum(1), 1e-12)
    e = np.maximum((d2 * d2).sum(1), 1e-12)
    b, c, f = (d1 * d2).sum(1), (d1 * r).sum(1), (d2 * r).sum(1)
    denom = a * e - b * b
    s = np.where(denom > 1e-9, np.clip((b * f - c * e) / np.maximum(denom, 1e-12), 0, 1), 0.0)
    t = np.clip((b * s + f) / e, 0, 1)
    s = np.clip((b * t - c) / a, 0, 1)
    return p0 + s[:, None] * d1, q0 + t[:, None] * d2
