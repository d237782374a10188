"""Synthetic time-lapses of growing, dividing cells with exact labels and exact lineage.

:func:`timelapse` simulates cells frame by frame (growth, division, motion, contact) and draws
each frame with the still generators' renderers: :func:`~.fluorescence.nuclei`'s nuclei and
widefield optics, :func:`~.phase_contrast.bacteria`'s rods and phase-contrast optics. The
optics (background, illumination, blur, halo) are drawn once per movie; the camera noise is new
in every frame, and the cells' texture moves with them.

The labels are a Cell Tracking Challenge pair with :attr:`Timelapse.tracks`: a cell keeps its
id from the frame it is born (or the first frame) to the frame before it divides (or the last
one it is seen in); each daughter gets a new id, and ids are never reused. A cell that leaves
the field of view ends its track there and is not simulated any further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.synth.canvas import Seed, check_shape, clean_labels
from napari_cellseg.synth.fluorescence import NucleusCanvas, Widefield, _nucleoli, chromatin
from napari_cellseg.synth.phase_contrast import (
    PhaseContrast,
    _divide,
    _endpoints,
    _rasterize_rods,
)
from napari_cellseg.track.ctc import Track

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

Kind = Literal["nuclei", "bacteria"]
KINDS: tuple[str, ...] = ("nuclei", "bacteria")

#: Default noise per kind (the still generators' defaults).
_NOISE = {"nuclei": 0.05, "bacteria": 0.03}


@dataclass(frozen=True)
class Timelapse:
    """A synthetic time-lapse: frames, exact labels and the exact lineage.

    Attributes
    ----------
    kind
        ``"nuclei"`` or ``"bacteria"``.
    images
        float32 ``(T, Y, X)``, in the still generator's counts.
    labels
        int32 ``(T, Y, X)``, 0 background, else the cell's track id.
    tracks
        One :class:`~napari_cellseg.track.ctc.Track` per id, sorted by id: exactly the frames
        the id is present in the labels, and its mother (0 for none).
    cells
        Structured array (:data:`CELL_DTYPE`), one row per cell present in a frame, sorted by
        frame then id: the simulated geometry (centre, axis, size, poles).
    drift
        float ``(T, 2)``: the stage position ``(y, x)`` relative to the first frame; the
        sample moves by minus this in the images.
    """

    kind: str
    images: np.ndarray
    labels: np.ndarray
    tracks: list[Track]
    cells: np.ndarray
    drift: np.ndarray

    @property
    def divisions(self) -> dict[int, list[int]]:
        """``{mother id: [daughter ids]}`` (one daughter where the other was born out of view)."""
        out: dict[int, list[int]] = {}
        for t in self.tracks:
            if t.parent:
                out.setdefault(t.parent, []).append(t.id)
        return out


def timelapse(
    kind: Kind = "nuclei",
    n_frames: int = 20,
    shape: tuple[int, int] = (256, 256),
    n_cells: int = 6,
    seed: Seed = 0,
    *,
    cycle: float = 10.0,
    drift: float = 1.5,
    motility: float = 1.0,
    noise: float | None = None,
) -> Timelapse:
    """A synthetic time-lapse of growing, dividing cells with exact labels and lineage.

    ``"nuclei"``: widefield fluorescence nuclei (as :func:`~.fluorescence.nuclei` draws them)
    spread over the field; each random-walks, its area doubles over its cycle, and it divides
    into two daughters of half its area, placed apart along a random axis (brighter for a
    frame around mitosis, as condensed chromatin is). Nuclei push each other apart so that
    they never overlap.

    ``"bacteria"``: a phase-contrast microcolony of rods (as :func:`~.phase_contrast.bacteria`
    draws them) grown from ``n_cells`` founders near the centre: rods elongate and divide
    across their middle when they reach about twice their birth length; the daughters keep the
    mother's axis, and the rods push each other apart (sliding and turning a little) so that
    they do not overlap. Each rod's old pole (inherited from its mother) and new pole (made by
    the division) are in :attr:`Timelapse.cells`.

    In both, the stage drifts by about ``drift`` px per frame in a slowly turning direction;
    cells that leave the field end their track.

    Parameters
    ----------
    kind
        ``"nuclei"`` or ``"bacteria"``.
    n_frames
        Number of frames ``T``.
    shape
        Frame shape ``(Y, X)``.
    n_cells
        Number of cells in the first frame.
    seed
        Seed (or ``SeedSequence`` / ``Generator``); the same seed gives the same movie.
    cycle
        Mean cell-cycle length in frames (each cell draws within 20 % of it; bacteria divide
        on reaching a size, so about this).
    drift
        Mean stage drift in px per frame.
    motility
        Nuclei: standard deviation of each nucleus' random step per frame and axis (px);
        bacteria: a third of it jitters the rods.
    noise
        Largest noise standard deviation relative to the background level, as in the still
        generators (None: their default, 0.05 for nuclei and 0.03 for bacteria).

    Returns
    -------
    Timelapse
        Images, labels (track ids), tracks, per-frame geometry and the stage drift.

    Examples
    --------
    >>> movie = timelapse("nuclei", n_frames=12, shape=(128, 128), n_cells=4, seed=1)
    >>> movie.images.shape, movie.labels.dtype
    ((12, 128, 128), dtype('int32'))
    >>> [t.id for t in movie.tracks] == list(range(1, len(movie.tracks) + 1))
    True
    >>> all(t.parent == 0 or movie.tracks[t.parent - 1].end == t.begin - 1 for t in movie.tracks)
    True
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, not {kind!r}")
    if n_frames < 1 or n_cells < 0:
        raise ValueError(f"need n_frames >= 1 and n_cells >= 0, not {n_frames}, {n_cells}")
    if cycle < 2:
        raise ValueError(f"cycle must be at least 2 frames, not {cycle}")
    shape = check_shape(shape)
    rng = np.random.default_rng(seed)
    noise = _NOISE[kind] if noise is None else noise
    offsets = _stage_drift(n_frames, drift, rng)
    world: _Nuclei | _Bacteria
    if kind == "nuclei":
        world = _Nuclei(shape, n_cells, cycle, motility, rng)
    else:
        world = _Bacteria(shape, n_cells, cycle, motility, offsets[-1], rng)
    images = np.zeros((n_frames, *shape), dtype=np.float32)
    labels = np.zeros((n_frames, *shape), dtype=np.int32)
    rows: list[np.ndarray] = []
    spans: dict[int, list[int]] = {}  # id: [begin, end, parent]
    for t in range(n_frames):
        if t:
            world.step()
        raw, image = world.render(offsets[t], noise)
        present = np.bincount(raw.ravel(), minlength=world.n + 1)[1:] > 0
        lookup = np.r_[0, world.ids].astype(np.int32)
        labels[t], images[t] = lookup[raw], image
        for cid, parent in zip(world.ids[present], world.parents[present]):
            spans.setdefault(int(cid), [t, t, int(parent)])[1] = t
        rows.append(world.geometry(t, offsets[t])[present])
        world.keep(present)  # cells out of view are gone for good
    # Ids 1..N in order of birth (cells born out of view never got a track).
    order = sorted(spans)
    renumber = np.zeros(world.next_id, dtype=np.int32)
    renumber[order] = np.arange(1, len(order) + 1)
    tracks = [
        Track(int(renumber[i]), spans[i][0], spans[i][1], int(renumber[spans[i][2]])) for i in order
    ]
    cells = np.concatenate(rows)
    cells["id"] = renumber[cells["id"]]
    return Timelapse(kind, images, renumber[labels], tracks, cells, offsets)


def _stage_drift(n_frames: int, speed: float, rng: np.random.Generator) -> np.ndarray:
    """Stage positions ``(T, 2)`` (y, x), 0 at the first frame: about ``speed`` px a frame in a
    direction that turns slowly, with some jitter."""
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.15, n_frames))
    step = speed * np.stack([np.sin(heading), np.cos(heading)], axis=-1)
    step = step + rng.normal(0, 0.25 * speed, step.shape)
    step[0] = 0.0
    return np.cumsum(step, axis=0)


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
