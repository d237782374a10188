"""Moving, growing, dividing widefield nuclei for :func:`napari_cellseg.synth.timelapse`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.synth.canvas import clean_labels
from napari_cellseg.synth.fluorescence import NucleusCanvas, Widefield, _nucleoli, chromatin
from napari_cellseg.synth.timelapse.cells import CELL_DTYPE, _Cells, _cycle_lengths


class _Nuclei(_Cells):
    """Widefield nuclei: random walk, growth, division along a random axis, no overlaps."""

    COLUMNS = (
        *_Cells.COLUMNS,
        *("d0", "elong", "bright", "age", "life", "harmonics", "phases"),
    )
    GAP = 2.0  # smallest distance between two nuclei's outlines (px)

    def __init__(
        self,
        shape: tuple[int, int],
        n: int,
        cycle: float,
        motility: float,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(rng)
        self.shape, self.cycle, self.motility = shape, cycle, motility
        self.ids = self.new_ids(0)
        self.parents = np.zeros(0, dtype=np.int64)
        for name in ("x", "y", "d0", "elong", "angle", "bright"):
            setattr(self, name, np.zeros(0))
        self.age = np.zeros(0, dtype=np.int64)
        self.life = np.zeros(0, dtype=np.int64)
        self.harmonics = np.zeros((0, 4))
        self.phases = np.zeros((0, 4))
        self.anchor = np.zeros((0, 2))
        self.spots: list[np.ndarray] = []
        life = _cycle_lengths(cycle, n, rng)
        age = rng.integers(0, life)
        d0 = rng.uniform(20.0, 27.0, n)
        self._add(np.zeros(n, dtype=np.int64), np.zeros((n, 2)), d0, age, life)
        self._place(shape)
        self.anchor = np.stack([self.x, self.y], axis=-1)
        self.optics = Widefield.draw(shape, rng)
        self.texture = chromatin(shape, rng)

    def _add(
        self,
        parents: np.ndarray,
        xy: np.ndarray,
        d0: np.ndarray,
        age: np.ndarray,
        life: np.ndarray,
        bright: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
    ) -> None:
        """Append nuclei of birth diameters ``d0`` at ``xy`` with fresh shapes and nucleoli."""
        rng, n = self.rng, len(d0)
        elong = rng.uniform(1.0, 1.6, n)
        if bright is None:
            bright = rng.lognormal(np.log(550.0), 0.25, n)
        b = d0 / 2 / np.sqrt(elong)
        self.spots += [_nucleoli(float(bk), rng) for bk in b]
        self.extend(
            ids=self.new_ids(n),
            parents=parents,
            x=xy[:, 0],
            y=xy[:, 1],
            d0=d0,
            elong=elong,
            angle=rng.uniform(0, np.pi, n),
            bright=bright,
            age=age,
            life=life,
            harmonics=rng.normal(0, 0.03, (n, 4)),
            phases=rng.uniform(0, 2 * np.pi, (n, 4)),
            anchor=xy if anchor is None else anchor,
        )

    def keep(self, rows: np.ndarray) -> None:
        self.spots = [self.spots[k] for k in np.arange(self.n)[rows]]
        super().keep(rows)

    def scale(self) -> np.ndarray:
        """Linear growth factor of each nucleus (its area doubles from birth to division)."""
        return 2.0 ** (self.age / (2.0 * np.maximum(self.life - 1, 1)))

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes ``a >= b``."""
        d = self.d0 * self.scale()
        return d / 2 * np.sqrt(self.elong), d / 2 / np.sqrt(self.elong)

    def _place(self, shape: tuple[int, int]) -> None:
        """Spread the first nuclei over the field, fully inside it, without contacts."""
        a, _ = self.axes()
        size = np.array([shape[1], shape[0]], dtype=np.float64)
        for k in range(self.n):
            lo = a[k] + self.GAP
            for _attempt in range(50):
                self.x[k], self.y[k] = self.rng.uniform(lo, np.maximum(size - lo, lo + 1))
                gap = np.hypot(self.x[:k] - self.x[k], self.y[:k] - self.y[k]) - a[:k] - a[k]
                if np.all(gap > 3 * self.GAP):
                    break
        self._relax()

    def step(self) -> None:
        """One frame later: divide the nuclei at the end of their cycle, grow, move, relax."""
        rng = self.rng
        self.age += 1
        dividing = np.flatnonzero(self.age >= self.life)
        if len(dividing):
            m = len(dividing)
            a, b = self._mother_axes(dividing)
            # Two daughters of half the mother's area; a little size asymmetry, same total.
            d_m = 2 * np.sqrt(a * b)
            e = rng.uniform(-0.08, 0.08, m)
            d1 = d_m / np.sqrt(2) * (1 + e)
            d2 = np.sqrt(np.maximum(d_m**2 - d1**2, 1.0))
            phi = rng.uniform(0, 2 * np.pi, m)
            u = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
            # Daughters are round-ish at birth; their centres one radius and a gap apart.
            shift = ((d1 + d2) / 2 * 1.25 / 2 + self.GAP)[:, None] * u
            centre = np.stack([self.x[dividing], self.y[dividing]], axis=-1)
            anchor = self.anchor[dividing]
            parents = np.r_[self.ids[dividing], self.ids[dividing]]
            self._add(
                parents,
                np.concatenate([centre - shift, centre + shift]),
                np.r_[d1, d2],
                np.zeros(2 * m, dtype=np.int64),
                _cycle_lengths(self.cycle, 2 * m, rng),
                bright=np.r_[self.bright[dividing], self.bright[dividing]]
                * rng.lognormal(0, 0.1, 2 * m),
                anchor=np.concatenate([anchor - shift, anchor + shift]),
            )
            self.keep(np.setdiff1d(np.arange(self.n), dividing))
        self.x += rng.normal(0, self.motility, self.n)
        self.y += rng.normal(0, self.motility, self.n)
        self.angle += rng.normal(0, 0.03, self.n)
        self._relax()

    def _mother_axes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes of the dividing nuclei ``rows`` as they were drawn in their last frame."""
        self.age[rows] -= 1
        a, b = self.axes()
        self.age[rows] += 1
        return a[rows], b[rows]

    def _relax(self, n_iter: int = 30) -> None:
        """Push overlapping nuclei apart (each pair to its outlines' distance plus ``GAP``)."""
        if self.n < 2:
            return
        a, b = self.axes()
        bound = 1 + np.abs(self.harmonics).sum(axis=1)
        for _ in range(n_iter):
            dx = self.x[None, :] - self.x[:, None]
            dy = self.y[None, :] - self.y[:, None]
            dist = np.hypot(dx, dy)
            phi = np.arctan2(dy, dx)
            t = phi - self.angle[:, None]
            reach = (a * b)[:, None] / np.hypot(b[:, None] * np.cos(t), a[:, None] * np.sin(t))
            reach *= bound[:, None]
            deficit = reach + reach.T + self.GAP - dist
            np.fill_diagonal(deficit, 0.0)
            deficit = np.maximum(deficit, 0.0)
            if not deficit.any():
                return
            ux, uy = dx / np.maximum(dist, 1e-9), dy / np.maximum(dist, 1e-9)
            # Each of a pair moves away from the other by half the deficit (plus a little).
            self.x -= 0.55 * (deficit * ux).sum(axis=1)
            self.y -= 0.55 * (deficit * uy).sum(axis=1)

    def render(self, offset: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
        """Labels (row + 1 per nucleus, 0 background) and camera image of the current frame."""
        a, b = self.axes()
        cx, cy = self.x - offset[1], self.y - offset[0]
        # Brighter (condensed chromatin) in the last frame before and the first after mitosis.
        mitosis = (self.age >= self.life - 1) | (self.age == 0)
        bright = self.bright * np.where(mitosis, 1.35, 1.0)
        s = self.scale()
        canvas = NucleusCanvas(self.shape)
        for k in range(self.n):
            blob = (cx[k], cy[k], a[k], b[k], self.angle[k], bright[k], 0.0)
            spots = self.spots[k] * np.array([s[k], s[k], 1.0, 1.0])
            canvas.draw(k + 1, blob, self.harmonics[k], self.phases[k], spots)
        raw = clean_labels(canvas.labels, renumber=False)
        level = canvas.level
        level[raw == 0] = 0.0
        inside, coords = self.texture_coords(raw, cx, cy)
        texture = np.ones(self.shape, dtype=np.float32)
        texture.ravel()[inside] = ndi.map_coordinates(self.texture, coords, order=1, mode="mirror")
        return raw, self.optics.image(level * texture, self.rng, noise)

    def geometry(self, t: int, offset: np.ndarray) -> np.ndarray:
        """:data:`CELL_DTYPE` rows of the current frame, one per nucleus."""
        a, b = self.axes()
        out = np.zeros(self.n, dtype=CELL_DTYPE)
        out["t"], out["id"] = t, self.ids
        out["y"], out["x"] = self.y - offset[0], self.x - offset[1]
        out["angle"], out["length"], out["width"] = self.angle, 2 * a, 2 * b
        out["old_pole"] = out["new_pole"] = np.nan
        return out
