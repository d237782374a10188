"""Synthetic phase-contrast images of rod-shaped bacteria in touching microcolonies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from napari_cellseg.synth.canvas import (
    Seed,
    SmoothField,
    add_noise,
    check_shape,
    clean_labels,
    illumination,
    white,
    window,
)


def bacteria(
    shape: tuple[int, int] = (256, 256),
    *,
    seed: Seed = 0,
    density: float = 0.55,
    width: tuple[float, float] = (8.0, 13.0),
    aspect: tuple[float, float] = (2.2, 4.5),
    isolated: float = 3.0,
    noise: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase-contrast-like rod-shaped bacteria in touching microcolonies.

    Colonies are smooth random blobs covering about ``density`` of the image. Each colony is
    split into domains of aligned cells (as in a growing E. coli microcolony); in a domain the
    rods are laid in gently curved lanes, end to end and side by side, slightly overlapping so
    that neighbours share interfaces. Rods that would cross an earlier rod are left out (or
    replaced by their two daughters), short rods fill what gaps they can, and the rest are the
    small gaps seen between domains in real colonies. A few single cells and just-divided pairs
    lie outside the colonies.

    The image models positive phase contrast: the cells' optical thickness (dome-shaped across
    each rod) is blurred by the optics and a low-passed copy is subtracted, which gives dark
    cells, a bright halo around colonies and in the gaps, bright seams where cells touch and the
    shade-off that makes colony interiors greyer than isolated cells. Then uneven illumination
    and signal-dependent noise.

    Parameters
    ----------
    shape
        Image shape ``(Y, X)``.
    seed
        Seed (or ``SeedSequence`` / ``Generator``); the same seed gives the same pair.
    density
        Approximate fraction of the image covered by colonies (0-1).
    width
        Range of the image's mean cell width in pixels (drawn once per image; each cell then
        varies by about 5 %).
    aspect
        Range of cell length / width, drawn per cell (a division cycle spans about 2x).
    isolated
        Expected number of cells outside colonies per 256 x 256 pixels.
    noise
        Largest noise standard deviation relative to the background level (each image draws
        between half and all of it).

    Returns
    -------
    image : numpy.ndarray
        float32 ``(Y, X)``, background around 1500-2500 counts, halo up to about 2x that,
        cell edges down to about 0.3x.
    labels : numpy.ndarray
        int32 ``(Y, X)``, 0 background, cells ``1..N``, each one 4-connected component.

    Examples
    --------
    >>> image, labels = bacteria((128, 128), seed=1)
    >>> image.dtype, labels.dtype, image.shape
    (dtype('float32'), dtype('int32'), (128, 128))
    """
    rng = np.random.default_rng(seed)
    shape = check_shape(shape)
    w0 = rng.uniform(*width)
    lanes, fillers = _colony_cells(shape, rng, w0, density, aspect)
    cells = np.concatenate([lanes, _isolated_cells(shape, rng, w0, aspect, isolated)])
    # Lane cells first in random order, then short cells that fill what gaps remain.
    cells = _drop_crossing(np.concatenate([cells[rng.permutation(len(cells))], fillers]))
    labels, depth, radius = _rasterize_rods(shape, cells)
    labels = clean_labels(labels)
    image = _phase_contrast(labels, depth, radius, w0, rng, noise)
    return image, labels


def _colony_cells(
    shape: tuple[int, int],
    rng: np.random.Generator,
    w0: float,
    density: float,
    aspect: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate rods in colonies, each row centre x, y, angle, half centreline length, radius,
    bend: rods laid in lanes per domain, and shorter gap fillers at random places."""
    ny, nx = shape
    if density <= 0:
        return np.zeros((0, 6)), np.zeros((0, 6))
    # Colonies: where a smooth random field exceeds its (1 - density) quantile. The field is
    # only evaluated on a coarse grid (for the threshold) and at the candidate centres.
    colony = SmoothField(shape, 10.0 * w0, rng)
    grid = colony(*np.mgrid[0:ny:4, 0:nx:4].astype(float))
    level = np.quantile(grid, 1.0 - min(density, 1.0))
    # Domains of aligned cells: Voronoi cells around seeds 6-10 cell widths apart.
    spacing = rng.uniform(6.0, 10.0) * w0
    n_dom = max(1, round(ny * nx / spacing**2))
    seeds = rng.uniform(
        (-spacing / 2, -spacing / 2), (nx + spacing / 2, ny + spacing / 2), (n_dom, 2)
    )
    thetas = rng.uniform(0, np.pi, n_dom)
    reach = 1.3 * spacing + aspect[1] * w0
    lane = 0.86 * w0
    n_lanes = int(2 * reach / lane) + 1
    mean_len = w0 * (sum(aspect) / 2 + 0.05)
    n_along = int(2 * reach / mean_len) + 2
    out = []
    for (sx, sy), theta in zip(seeds, thetas):
        kappa = rng.uniform(-0.3, 0.3) / reach  # lanes y = v + kappa u^2: slope <= 0.6
        length = w0 * rng.uniform(*aspect, (n_lanes, n_along))
        gap = w0 * rng.uniform(-0.12, 0.08, (n_lanes, n_along))
        ends = np.cumsum(length + gap, axis=1) - rng.uniform(0, mean_len, (n_lanes, 1)) - reach
        u = ends - gap - length / 2
        v = (np.arange(n_lanes) * lane - reach)[:, None] + rng.normal(0, 0.04 * w0, u.shape)
        v = v + kappa * u**2
        ang = theta + np.arctan(2 * kappa * u) + rng.normal(0, 0.03, u.shape)
        c, s = np.cos(theta), np.sin(theta)
        x = sx + u * c - v * s
        y = sy + u * s + v * c
        rad = w0 / 2 * rng.normal(1.0, 0.05, u.shape)
        half = np.maximum(length / 2 - rad, 0.5)
        bend = rng.uniform(-0.1, 0.1, u.shape) * w0 / np.maximum(half, 1.0) ** 2
        out.append(np.stack([x, y, ang, half, rad, bend], axis=-1).reshape(-1, 6))
    lanes = np.concatenate(out)
    source = np.repeat(np.arange(n_dom), n_lanes * n_along)
    # Gap fillers: short rods roughly aligned with their domain.
    n_fill = int(np.mean(grid > level) * ny * nx / w0**2)
    x, y = rng.uniform(0, nx, n_fill), rng.uniform(0, ny, n_fill)
    rad = w0 / 2 * rng.normal(1.0, 0.05, n_fill)
    half = np.maximum(w0 * rng.uniform(1.4, aspect[0] + 0.5, n_fill) / 2 - rad, 0.5)
    fillers = np.stack([x, y, np.zeros(n_fill), half, rad, np.zeros(n_fill)], axis=-1)
    # Keep candidates centred in a colony (near the image) and in their own domain, decided
    # by a jittered distance so that neighbouring domains interlock a little.
    margin = w0 * aspect[1] / 2
    kept = []
    for cand in (lanes, fillers):
        x, y = cand[:, 0], cand[:, 1]
        near = (x > -margin) & (x < nx + margin) & (y > -margin) & (y < ny + margin)
        near[near] = colony(np.clip(y[near], 0, ny - 1), np.clip(x[near], 0, nx - 1)) > level
        cand = cand[near]
        dist = np.hypot(cand[:, None, 0] - seeds[None, :, 0], cand[:, None, 1] - seeds[None, :, 1])
        owner = np.argmin(dist + rng.normal(0, 0.1 * spacing, (len(cand), 1)), axis=1)
        kept.append((cand, owner, near))
    (lanes, owner, near), (fillers, fill_owner, _) = kept
    fillers[:, 2] = thetas[fill_owner] + rng.normal(0, 0.3, len(fillers))
    return lanes[owner == source[near]], fillers


def _isolated_cells(
    shape: tuple[int, int],
    rng: np.random.Generator,
    w0: float,
    aspect: tuple[float, float],
    expected: float,
) -> np.ndarray:
    """Single rods and just-divided end-to-end pairs scattered over the image."""
    n = rng.poisson(expected * shape[0] * shape[1] / 256**2)
    x = rng.uniform(0, shape[1], n)
    y = rng.uniform(0, shape[0], n)
    ang = rng.uniform(0, np.pi, n)
    rad = w0 / 2 * rng.normal(1.0, 0.05, n)
    length = w0 * rng.uniform(*aspect, n)
    half = np.maximum(length / 2 - rad, 0.5)
    single = np.stack([x, y, ang, half, rad, np.zeros(n)], axis=-1)
    # Half of them have just divided: two daughters end to end, touching at the poles.
    pair = rng.random(n) < 0.5
    shift = (half + rad - 0.06 * w0)[pair]
    d = np.stack([np.cos(ang[pair]), np.sin(ang[pair])], axis=-1) * shift[:, None]
    first, second = single[pair].copy(), single[pair].copy()
    first[:, :2] -= d
    second[:, :2] += d
    return np.concatenate([single[~pair], first, second])


def _drop_crossing(cells: np.ndarray, tolerance: float = 0.7) -> np.ndarray:
    """Keep rods in order, dropping any whose centreline comes closer to a kept one than
    ``tolerance`` times the sum of their radii (so overlaps stay shallow and no rod crosses
    another). A long rod that does not fit is tried again as its two daughters, which fills
    most of the gaps where domains of different orientation meet."""
    if len(cells) == 0:
        return cells
    n = len(cells)
    daughters = _divide(cells)
    divisible = daughters[:n, 3] > 0
    every = np.concatenate([cells, daughters[np.r_[divisible, divisible]]])
    # Index of the first daughter of each divisible rod in ``every`` (the second is m later).
    first = n + np.cumsum(divisible) - 1
    m = int(divisible.sum())
    p0, p1 = _endpoints(every)
    reach = every[:, 3] + every[:, 4]
    pairs = cKDTree(every[:, :2]).query_pairs(2 * float(reach.max()), output_type="ndarray")
    i, j = pairs.T
    close = np.hypot(*(every[i, :2] - every[j, :2]).T) < reach[i] + reach[j]
    pairs, i, j = pairs[close], i[close], j[close]
    dist = _segment_distance(p0[i], p1[i], p0[j], p1[j])
    clash = pairs[dist < tolerance * (every[i, 4] + every[j, 4])]
    clash = np.concatenate([clash, clash[:, ::-1]])
    clash = clash[np.argsort(clash[:, 0], kind="stable")]
    starts = np.searchsorted(clash[:, 0], np.arange(len(every) + 1)).tolist()
    others = clash[:, 1]
    kept = np.zeros(len(every), dtype=bool)
    for k in range(n):
        kept[k] = not kept[others[starts[k] : starts[k + 1]]].any()
        if not kept[k] and divisible[k]:
            for c in (first[k], first[k] + m):
                kept[c] = not kept[others[starts[c] : starts[c + 1]]].any()
    return every[kept]


def _divide(cells: np.ndarray) -> np.ndarray:
    """The two daughters of each rod, ``(2 n, 6)`` (first halves, then second halves); rods
    shorter than 3 widths get placeholder daughters with a negative half length (not divisible)."""
    rad = cells[:, 4]
    length = 2 * (cells[:, 3] + rad)
    half = np.where(length >= 6 * rad, length / 4 - 0.9 * rad, -1.0)
    shift = np.stack([np.cos(cells[:, 2]), np.sin(cells[:, 2])], axis=-1) * (length / 4)[:, None]
    first, second = cells.copy(), cells.copy()
    first[:, :2] -= shift
    second[:, :2] += shift
    first[:, 3] = second[:, 3] = half
    first[:, 5] = second[:, 5] = 0.0
    return np.concatenate([first, second])


def _endpoints(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.stack([np.cos(cells[:, 2]), np.sin(cells[:, 2])], axis=-1) * cells[:, 3:4]
    return cells[:, :2] - d, cells[:, :2] + d


def _segment_distance(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Distance between segments ``a0[k]-a1[k]`` and ``b0[k]-b1[k]`` (0 where they cross)."""
    dist = np.minimum.reduce(
        [
            _point_segment(a0, b0, b1),
            _point_segment(a1, b0, b1),
            _point_segment(b0, a0, a1),
            _point_segment(b1, a0, a1),
        ]
    )

    def side(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
            - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    crossing = (side(a0, a1, b0) != side(a0, a1, b1)) & (side(b0, b1, a0) != side(b0, b1, a1))
    return np.where(crossing, 0.0, dist)


def _point_segment(p: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> np.ndarray:
    dx, dy = (s1 - s0).T
    px, py = (p - s0).T
    t = np.clip((px * dx + py * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
    return np.hypot(px - t * dx, py - t * dy)


def _rasterize_rods(
    shape: tuple[int, int], cells: np.ndarray, seam: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw slightly bent capsules; each pixel goes to the capsule it lies deepest inside.

    A background pixel between two capsules whose outlines are less than ``seam`` px apart
    there (its distances to the two outlines add up to less than ``seam``) goes to the nearer
    one, so that cells that almost touch meet at an interface instead of leaving a thin
    background seam; such pixels are drawn as thin cell edge. Returns the labels (1-based in
    drawing order), the depth (distance inside the outline; 0 on background) and the radius of
    the winning capsule.
    """
    labels = np.zeros(shape, dtype=np.int32)
    best = np.full(shape, -seam, dtype=np.float32)  # depth in the deepest capsule
    second = np.full(shape, -seam, dtype=np.float32)  # depth in the next deepest
    radius = np.ones(shape, dtype=np.float32)
    for k, (cx, cy, ang, half, rad, bend) in enumerate(cells):
        drawn = window(shape, cx, cy, half + rad + abs(bend) * half**2 + seam + 1.0)
        if drawn is None:
            continue
        box, yy, xx = drawn
        c, s = np.cos(ang), np.sin(ang)
        along = xx * c + yy * s
        across = yy * c - xx * s - bend * along**2
        inner = rad - np.hypot(np.maximum(np.abs(along) - half, 0), across)
        old = best[box]
        win = inner > old
        second[box] = np.where(win, old, np.maximum(second[box], inner))
        old[win] = inner[win]
        labels[box][win] = k + 1
        radius[box][win] = rad
    inside = best > 0
    gap = -(best + second)  # outline-to-outline width of the gap through a background pixel
    labels[~inside & (gap >= seam)] = 0
    # Seam pixels get a small depth (at most seam / 6) so that they render as cell edge.
    depth = np.where(inside, best, np.where(labels > 0, (seam - gap) / 6, 0.0))
    return labels, depth, radius


def _phase_contrast(
    labels: np.ndarray,
    depth: np.ndarray,
    radius: np.ndarray,
    w0: float,
    rng: np.random.Generator,
    noise: float,
) -> np.ndarray:
    """Render positive phase contrast from the cells' dome-shaped optical thickness."""
    optics = PhaseContrast.draw(labels.shape, w0, rng)
    return optics.image(labels, depth, radius, optics.grain, rng, noise)


@dataclass(frozen=True)
class PhaseContrast:
    """A positive phase-contrast microscope for cells about ``w0`` pixels wide: blur, halo and
    shade-off, illumination, noise, and the cytoplasm's fine structure.

    Drawn once per image by :func:`bacteria` (once per movie by the time-lapses, so that only
    the noise changes from frame to frame).

    Attributes
    ----------
    w0
        Mean cell width in pixels (the scale of the blur and the halo).
    blur, halo
        Blur and halo widths relative to ``w0 / 10`` and ``w0``.
    contrast, shade
        Phase contrast, and the weight of the subtracted low-passed (halo) copy.
    grain
        Smooth white-noise field ``(Y, X)`` modulating the cytoplasm.
    level
        Background counts.
    gain
        Illumination gain ``(Y, X)``.
    """

    w0: float
    blur: float
    halo: float
    contrast: float
    shade: float
    grain: np.ndarray
    level: float
    gain: np.ndarray

    @classmethod
    def draw(cls, shape: tuple[int, int], w0: float, rng: np.random.Generator) -> PhaseContrast:
        """Random optics for images of ``shape``."""
        blur, halo, contrast, shade = (rng.uniform(*r) for r in _PHASE_RANGES)
        grain = ndi.gaussian_filter(white(shape, rng), 1.5)
        level = rng.uniform(1500.0, 2500.0)
        return cls(w0, blur, halo, contrast, shade, grain, level, illumination(shape, rng, 0.15))

    def image(
        self,
        labels: np.ndarray,
        depth: np.ndarray,
        radius: np.ndarray,
        grain: np.ndarray,
        rng: np.random.Generator,
        noise: float,
    ) -> np.ndarray:
        """The camera image (float32) of cells drawn by :func:`_rasterize_rods` (``labels``,
        ``depth``, ``radius``), with ``grain`` (:attr:`grain`, or one that moves with them)."""
        w0 = self.w0
        q = np.where(labels > 0, 1.0 - depth / radius, 1.0)
        thickness = np.sqrt(np.clip(1.0 - q * q, 0.0, None)) * (2.0 * radius / w0)
        blurred = ndi.gaussian_filter(thickness, self.blur * w0 / 10)
        halo = ndi.gaussian_filter(thickness, self.halo * w0, truncate=3.0)
        rel = 1.0 - self.contrast * (blurred - self.shade * halo)
        # A little structure in the cytoplasm.
        rel -= 0.25 * thickness * grain
        image = np.clip(rel, 0.05, None) * self.level * self.gain
        return add_noise(image, rng, noise, self.level)


#: Ranges of :class:`PhaseContrast`'s blur, halo, contrast and shade (drawn in this order).
_PHASE_RANGES = ((0.7, 1.2), (0.5, 0.8), (1.1, 1.5), (1.0, 1.15))
