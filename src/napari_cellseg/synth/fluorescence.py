"""Synthetic widefield fluorescence images of nuclei."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.synth.canvas import (
    Seed,
    SmoothField,
    add_noise,
    check_shape,
    clean_labels,
    illumination,
    unit,
    white,
    window,
)


def nuclei(
    shape: tuple[int, int] = (256, 256),
    *,
    seed: Seed = 0,
    density: float = 0.2,
    diameter: tuple[float, float] = (22.0, 38.0),
    touching: float = 0.15,
    mitotic: float = 0.05,
    noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Widefield fluorescence nuclei (Hoechst-like) with exact labels.

    Nuclei are irregular ellipses (aspect up to about 1.9, a few low harmonics on the outline)
    with per-nucleus brightness, a smooth chromatin texture and a few dark nucleoli; about
    ``touching`` of them are placed against an earlier nucleus so that they share an interface.
    A small fraction are small, bright, ragged mitotic figures. Blur, a dim out-of-focus haze,
    a background offset with uneven illumination and signal-dependent noise complete the image.

    Parameters
    ----------
    shape
        Image shape ``(Y, X)``.
    seed
        Seed (or ``SeedSequence`` / ``Generator``); the same seed gives the same pair.
    density
        Approximate fraction of the image covered by nuclei.
    diameter
        Range of equivalent diameters in pixels (BBBC039: median about 29).
    touching
        Fraction of nuclei placed touching another one.
    mitotic
        Fraction of nuclei drawn as small bright mitotic figures.
    noise
        Largest noise standard deviation relative to the background level (each image draws
        between half and all of it).

    Returns
    -------
    image : numpy.ndarray
        float32 ``(Y, X)``, background about 150 counts, nuclei about 350-1100.
    labels : numpy.ndarray
        int32 ``(Y, X)``, 0 background, nuclei ``1..N``, each one 4-connected component.

    Examples
    --------
    >>> image, labels = nuclei((128, 128), seed=1)
    >>> bool(image[labels > 0].mean() > 2 * image[labels == 0].mean())
    True
    """
    rng = np.random.default_rng(seed)
    shape = check_shape(shape)
    # Centres may lie a little outside the image so that nuclei are cut by its edges.
    margin = 0.3 * float(np.mean(diameter))
    mean_area = np.pi / 4 * np.mean(np.square(diameter))
    area = (shape[0] + 2 * margin) * (shape[1] + 2 * margin)
    n = max(1, rng.poisson(density * area / mean_area)) if density > 0 else 0
    blobs = _place_nuclei(shape, rng, n, diameter, touching, mitotic, margin)
    labels, level = _rasterize_nuclei(shape, blobs, rng)
    labels = clean_labels(labels)
    level[labels == 0] = 0.0
    texture = chromatin(shape, rng)
    optics = Widefield.draw(shape, rng)
    return optics.image(level * texture, rng, noise), labels


def chromatin(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative chromatin texture about 1: fine grain and coarser clumps (float32)."""
    grain = ndi.gaussian_filter(white(shape, rng), 1.2)
    clumps = ndi.gaussian_filter(white(shape, rng), 4.0, truncate=3.0)
    return 1.0 + 0.08 * unit(grain) + 0.08 * unit(clumps)


@dataclass(frozen=True)
class Widefield:
    """What a widefield fluorescence microscope adds to the nuclei's signal: blur, a dim
    out-of-focus haze, a background offset with uneven illumination, and the camera noise.

    Drawn once per image by :func:`nuclei` (once per movie by the time-lapses, so that only
    the noise changes from frame to frame).

    Attributes
    ----------
    blur
        Standard deviation of the optics' blur in pixels.
    background
        Background counts ``(Y, X)`` (offset times illumination and haze).
    gain
        Illumination gain ``(Y, X)`` applied to the signal.
    """

    blur: float
    background: np.ndarray
    gain: np.ndarray

    @classmethod
    def draw(cls, shape: tuple[int, int], rng: np.random.Generator) -> Widefield:
        """Random optics for images of ``shape``."""
        blur = rng.uniform(0.8, 1.4)
        haze = 1.0 + 0.03 * unit(SmoothField(shape, 40.0, rng)(*np.indices(shape)))
        background = rng.uniform(130.0, 170.0) * illumination(shape, rng, 0.1) * haze
        return cls(blur, background, illumination(shape, rng, 0.15))

    def image(self, signal: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        """The camera image (float32) of the nuclei's ``signal`` (sharp, in counts)."""
        signal = ndi.gaussian_filter(signal, self.blur)
        signal += 0.04 * ndi.gaussian_filter(signal, 12.0, truncate=2.5)
        image = self.background + signal * self.gain
        return add_noise(image, rng, noise, float(np.median(self.background)))


def _place_nuclei(
    shape: tuple[int, int],
    rng: np.random.Generator,
    n: int,
    diameter: tuple[float, float],
    touching: float,
    mitotic: float,
    margin: float,
) -> list[tuple[float, ...]]:
    """Blobs ``(cx, cy, a, b, angle, brightness, mitotic)`` with gaps or shared interfaces."""
    blobs: list[tuple[float, ...]] = []
    centres = np.zeros((0, 2))
    radii = np.zeros(0)
    for _ in range(n):
        is_mitotic = rng.random() < mitotic
        d = rng.uniform(*diameter) * (0.5 if is_mitotic else 1.0)
        elong = rng.uniform(1.0, 1.3 if is_mitotic else 1.9)
        a, b = d / 2 * np.sqrt(elong), d / 2 / np.sqrt(elong)
        angle = rng.uniform(0, np.pi)
        bright = rng.lognormal(np.log(550.0), 0.25) * (3.0 if is_mitotic else 1.0)
        for _attempt in range(20):
            partner = -1
            if len(blobs) and rng.random() < touching:
                partner = int(rng.integers(len(blobs)))
                phi = rng.uniform(0, 2 * np.pi)
                reach = _ellipse_radius(a, b, angle, phi + np.pi)
                dist = 0.92 * (_ellipse_radius(*blobs[partner][2:5], phi) + reach)
                c = centres[partner] + dist * np.array([np.cos(phi), np.sin(phi)])
            else:
                c = rng.uniform((-margin, -margin), (shape[1] + margin, shape[0] + margin))
            gap = np.hypot(*(centres - c).T) - radii - a
            if partner >= 0:
                gap[partner] = np.inf
            if np.all(gap > 4.0):
                break
        else:
            continue
        blobs.append((c[0], c[1], a, b, angle, bright, float(is_mitotic)))
        centres = np.vstack([centres, c])
        radii = np.append(radii, a)
    return blobs


def _ellipse_radius(a: float, b: float, angle: float, phi: float) -> float:
    """Distance from the centre to the outline of an ellipse in direction ``phi``."""
    t = phi - angle
    return float(a * b / np.hypot(b * np.cos(t), a * np.sin(t)))


def _rasterize_nuclei(
    shape: tuple[int, int], blobs: list[tuple[float, ...]], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw star-shaped blobs; a pixel goes to the blob whose outline it is deepest inside."""
    canvas = NucleusCanvas(shape)
    for k, blob in enumerate(blobs):
        is_mitotic = blob[6]
        harmonics = rng.normal(0, 0.08 if is_mitotic else 0.03, 4)
        phases = rng.uniform(0, 2 * np.pi, 4)
        if canvas.reach(blob, harmonics) is None:
            continue
        spots = _nucleoli(blob[3], rng) if not is_mitotic else None
        canvas.draw(k + 1, blob, harmonics, phases, spots)
    return canvas.labels, canvas.level


class NucleusCanvas:
    """Labels and signal level of nuclei drawn one at a time (:meth:`draw`); a pixel goes to
    the nucleus whose outline it lies deepest inside."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.labels = np.zeros(shape, dtype=np.int32)
        self.score = np.ones(shape, dtype=np.float32)
        self.level = np.zeros(shape, dtype=np.float32)

    def reach(
        self, blob: tuple[float, ...], harmonics: np.ndarray
    ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
        """Where ``blob`` may draw (:func:`~.canvas.window`); None when it is off the image."""
        cx, cy, a = blob[:3]
        return window(self.shape, cx, cy, a * (1 + np.abs(harmonics).sum()) + 2)

    def draw(
        self,
        label: int,
        blob: tuple[float, ...],
        harmonics: np.ndarray,
        phases: np.ndarray,
        spots: np.ndarray | None,
    ) -> None:
        """Draw one nucleus.

        Parameters
        ----------
        label
            Its label.
        blob
            ``(cx, cy, a, b, angle, brightness, mitotic)``: centre, semi-axes, orientation.
        harmonics, phases
            Relative amplitudes and phases of the outline's harmonics 2 to 5.
        spots
            Nucleoli (:func:`_nucleoli`), None for none.
        """
        cx, cy, a, b, angle, bright, _ = blob
        drawn = self.reach(blob, harmonics)
        if drawn is None:
            return
        box, yy, xx = drawn
        t = np.arctan2(yy, xx) - angle
        r = a * b / np.hypot(b * np.cos(t), a * np.sin(t))
        r = r * (
            1 + sum(h * np.cos((j + 2) * t + p) for j, (h, p) in enumerate(zip(harmonics, phases)))
        )
        q = np.hypot(xx, yy) / r
        win = q < self.score[box]
        # Flat-topped profile with a soft rim about 2 px wide, slightly domed.
        rim = np.clip((1.0 - q) * r / 2.0, 0.0, 1.0)
        profile = np.sqrt(rim) * (0.85 + 0.15 * np.sqrt(np.clip(1 - q * q, 0, 1)))
        field = _nucleoli_field(xx, yy, spots) if spots is not None else 1.0
        self.score[box][win] = q[win]
        self.labels[box][win] = label
        self.level[box][win] = (bright * profile * field)[win]


def _nucleoli(b: float, rng: np.random.Generator) -> np.ndarray:
    """0-3 dark nucleoli (mostly 0 or 1) inside a nucleus of minor semi-axis ``b``: rows
    ``(x, y, size, depth)``, the position relative to the nucleus' centre."""
    spots = []
    for _ in range(rng.choice(4, p=(0.4, 0.35, 0.2, 0.05))):
        px, py = rng.uniform(-0.5, 0.5, 2) * b
        size = rng.uniform(1.5, 3.0)
        spots.append((px, py, size, rng.uniform(0.2, 0.5)))
    return np.array(spots, dtype=np.float64).reshape(-1, 4)


def _nucleoli_field(xx: np.ndarray, yy: np.ndarray, spots: np.ndarray) -> np.ndarray:
    """Multiplicative field of the nucleoli ``spots`` (:func:`_nucleoli`) at offsets ``xx, yy``."""
    field = np.ones(np.broadcast_shapes(xx.shape, yy.shape), dtype=np.float32)
    for px, py, size, depth in spots:
        field -= float(depth) * np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * float(size) ** 2))
    return field
