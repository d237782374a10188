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

from napari_cellseg.synth.canvas import Seed, check_shape
from napari_cellseg.synth.timelapse.cells import CELL_DTYPE
from napari_cellseg.synth.timelapse.nuclei import _Nuclei
from napari_cellseg.synth.timelapse.rods import _Bacteria
from napari_cellseg.track.ctc import Track

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


__all__ = ["CELL_DTYPE", "KINDS", "Kind", "Timelapse", "timelapse"]
