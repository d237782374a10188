"""Data augmentation: warped crops, intensity changes, DeLTA operations and CLB trimming.

Every function takes numpy arrays and a ``numpy.random.Generator``; all randomness comes from
that generator, so a seeded generator gives bit-identical results. The module uses numpy and
scipy only (no torch): it runs in data-loader worker processes.

Geometry is applied identically to an image, its label matrix and any extra maps (weights).
Images are resampled bilinearly (order 1), label matrices by nearest neighbour (order 0), so
labels stay integral and keep their ids. Resampling gathers only the output pixels from the
input through one coordinate map (the whole image is never warped): a 224 x 224 warped crop of
a one-channel image and its labels costs 1-2 ms, about half of scipy's ``affine_transform``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from scipy import ndimage as ndi
from scipy.interpolate import PchipInterpolator

from napari_cellseg.errors import CellsegError

__all__ = [
    "DELTA_DEFAULT_OPS",
    "TRIM_METHODS",
    "clb_augment",
    "delta_augment",
    "intensity_augment",
    "load_augment_ops",
    "random_warp_crop",
    "trim",
]

_BorderMode = Literal["reflect", "nearest"]

# --------------------------------------------------------------------------------------------
# Resampling through a coordinate map
# --------------------------------------------------------------------------------------------


def _fold(index: np.ndarray, n: int, mode: _BorderMode) -> np.ndarray:
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


class _Sampler:
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
        self, cy: np.ndarray, cx: np.ndarray, in_shape: tuple[int, int], mode: _BorderMode
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


def _affine_sampler(
    matrix: np.ndarray,
    offset: np.ndarray,
    out_shape: tuple[int, int],
    in_shape: tuple[int, int],
    mode: _BorderMode,
) -> _Sampler:
    """Sampler for ``input_yx = matrix @ output_yx + offset`` (scipy's ``affine_transform``)."""
    oy = np.arange(out_shape[0], dtype=np.float32)[:, None]
    ox = np.arange(out_shape[1], dtype=np.float32)[None, :]
    # Python floats keep the coordinate arithmetic in float32 (NEP 50).
    (m00, m01), (m10, m11) = matrix.tolist()
    off_y, off_x = (float(v) for v in offset)
    cy = (m00 * oy + off_y) + m01 * ox
    cx = (m10 * oy + off_x) + m11 * ox
    return _Sampler(cy, cx, in_shape, mode)


def _centred_sampler(
    matrix: np.ndarray,
    in_shape: tuple[int, int],
    mode: _BorderMode,
    shift: Sequence[float] | np.ndarray = (0.0, 0.0),
) -> _Sampler:
    """Same-shape warp about the image centre: ``input = c + matrix @ (output - c) + shift``."""
    centre = (np.asarray(in_shape, dtype=float) - 1) / 2
    offset = centre + np.asarray(shift, dtype=float) - matrix @ centre
    return _affine_sampler(matrix, offset, in_shape, in_shape, mode)


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _remove_orphans(labels: np.ndarray, max_passes: int = 4) -> np.ndarray:
    """Give each pixel that shares its label with none of its 4 neighbours their commonest label.

    Nearest-neighbour downscaling leaves such isolated pixels on thin parts and edges of cells;
    they would become one-pixel objects or holes in the training targets (Omnipose removes them
    with a mode filter after warping). Votes come from neighbours that are not orphans
    themselves, so a fixed pixel joins a region that stays; orphans whose neighbours are all
    orphans are fixed in a further pass. Image-border pixels count as their own neighbour.
    """
    out = labels
    for _ in range(max_passes):
        p = np.pad(out, 1, mode="edge")
        up, down, left, right = p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]
        orphan = (out != up) & (out != down) & (out != left) & (out != right)
        if not orphan.any():
            break
        ys, xs = np.nonzero(orphan)
        q = np.pad(orphan, 1, mode="edge")
        voters = ~np.stack([q[ys, xs + 1], q[ys + 2, xs + 1], q[ys + 1, xs], q[ys + 1, xs + 2]], 1)
        neighbours = np.stack([up[ys, xs], down[ys, xs], left[ys, xs], right[ys, xs]], axis=1)
        votes = ((neighbours[:, :, None] == neighbours[:, None, :]) & voters[:, None, :]).sum(2)
        votes[~voters] = -1
        out = out.copy() if out is labels else out
        out[ys, xs] = neighbours[np.arange(len(ys)), votes.argmax(axis=1)]
    return out


# --------------------------------------------------------------------------------------------
# Omnipose-style random warped crops
# --------------------------------------------------------------------------------------------


def _random_crop_matrix(
    rng: np.random.Generator,
    scale_range: tuple[float, float],
    rescale: float,
    rotate: bool,
    flip: bool,
) -> np.ndarray:
    """Matrix from output-crop offsets to input offsets: rotation . 1/scale . flips."""
    scale = rng.uniform(scale_range[0], scale_range[1], size=2) * rescale
    theta = rng.uniform(0.0, 2 * math.pi) if rotate else 0.0
    signs = np.where(rng.random(2) < 0.5, -1.0, 1.0) if flip else np.ones(2)
    return _rotation(theta) @ np.diag(signs / scale)


def random_warp_crop(
    image: np.ndarray,
    labels: np.ndarray,
    tyx: tuple[int, int] = (224, 224),
    rng: np.random.Generator | None = None,
    *,
    scale_range: tuple[float, float] = (0.5, 1.5),
    rotate: bool = True,
    flip: bool = True,
    extras: Sequence[np.ndarray] = (),
    extras_order: Sequence[int] = (),
    rescale: float = 1.0,
    min_fg_fraction: float = 0.001,
    max_tries: int = 20,
    remove_orphans: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], bool]:
    """Cut one randomly scaled, rotated, flipped and translated crop of size ``tyx``.

    One affine map from crop to image coordinates is drawn (Omnipose's ``random_crop_warp``):
    rotation ~ U[0, 2 pi), scale ~ U(scale_range) per axis times ``rescale``, a flip of each
    axis with p = 0.5 and a translation. Only the crop is sampled; parts of the crop outside the
    image are filled by reflection.

    Placement: the first try places the crop uniformly (inside the image when the image is
    larger than the crop, covering it otherwise). When that crop has less than
    ``min_fg_fraction`` foreground, later tries centre a new transform on a random foreground
    pixel (so a random cell is sampled, area-weighted), which finds cells in sparse images
    where uniform placement rarely does. If no try reaches the fraction, the crop with the most
    foreground is returned with ``found_cells=False``; this never raises (an image without any
    cell gives an empty crop after one try). The caller decides whether and how often to warn.

    Parameters
    ----------
    image
        float32 array (C, Y, X).
    labels
        Integer label matrix (Y, X), 0 = background.
    tyx
        Crop shape (the training CLI requires multiples of 8).
    rng
        Source of all randomness; a fresh unseeded generator when None.
    scale_range
        Range of the per-axis zoom factor (> 1 enlarges objects). Omnipose uses (0.5, 1.5), or
        (0.75, 1.25) when images are rescaled to a common cell diameter.
    rotate, flip
        Draw a random rotation / random flips.
    extras
        Further maps of shape (Y, X) or (K, Y, X) warped with the same transform (weights).
    extras_order
        Interpolation order (0 or 1) of each extra; empty means 1 for all.
    rescale
        Extra zoom multiplied into the scale, e.g. ``diam_mean / diameter_of_this_image``.
    min_fg_fraction
        Fraction of crop pixels that must be foreground.
    max_tries
        Number of placements tried before giving up.
    remove_orphans
        Relabel label pixels that share their id with none of their 4 neighbours.

    Returns
    -------
    image_crop : numpy.ndarray
        float32 (C, *tyx).
    labels_crop : numpy.ndarray
        int32 (*tyx); ids are a subset of the input ids.
    extras_crops : list of numpy.ndarray
        One per extra: float32 for order 1, the input dtype for order 0.
    found_cells : bool
        Whether the crop reaches ``min_fg_fraction`` (and holds at least one labelled pixel).
    """
    rng = np.random.default_rng() if rng is None else rng
    image = np.asarray(image, dtype=np.float32)
    labels = np.asarray(labels)
    if image.ndim != 3 or labels.shape != image.shape[1:]:
        raise ValueError(
            f"expected image (C, Y, X) and labels (Y, X), got {image.shape} and {labels.shape}"
        )
    orders = list(extras_order) or [1] * len(extras)
    if len(orders) != len(extras):
        raise ValueError(f"{len(extras)} extras but {len(orders)} interpolation orders")
    in_shape = (labels.shape[0], labels.shape[1])
    out_shape = (int(tyx[0]), int(tyx[1]))
    out_centre = (np.asarray(out_shape, dtype=float) - 1) / 2
    needed = min_fg_fraction * out_shape[0] * out_shape[1]

    foreground: np.ndarray | None = None
    best: tuple[int, _Sampler, np.ndarray] | None = None
    for attempt in range(max(1, max_tries)):
        matrix = _random_crop_matrix(rng, scale_range, rescale, rotate, flip)
        if attempt == 0:
            # Half-extent of the crop's bounding box in the image; the centre is uniform over
            # the positions that keep the crop inside (or the image inside the crop).
            half = np.abs(matrix) @ out_centre
            far = np.asarray(in_shape, dtype=float) - 1 - half
            centre = rng.uniform(np.minimum(half, far), np.maximum(half, far))
        else:
            if foreground is None:
                foreground = np.flatnonzero(labels)
            if foreground.size == 0:
                break
            pixel = np.array(divmod(int(foreground[rng.integers(foreground.size)]), in_shape[1]))
            # The pixel lands anywhere in the central half of the crop.
            landing = rng.uniform(0.25, 0.75, size=2) * (np.asarray(out_shape) - 1)
            centre = pixel - matrix @ (landing - out_centre)
        sampler = _affine_sampler(
            matrix, centre - matrix @ out_centre, out_shape, in_shape, "reflect"
        )
        crop = sampler.sample(labels, 0)
        count = int(np.count_nonzero(crop))
        if best is None or count > best[0]:
            best = (count, sampler, crop)
        if count and count >= needed:
            break

    assert best is not None  # the loop runs at least once
    count, sampler, labels_crop = best
    labels_crop = labels_crop.astype(np.int32, copy=False)
    if remove_orphans:
        labels_crop = _remove_orphans(labels_crop)
    image_crop = sampler.sample(image, 1)
    extras_crops = [sampler.sample(np.asarray(e), o) for e, o in zip(extras, orders)]
    return image_crop, labels_crop, extras_crops, bool(count) and count >= needed


# --------------------------------------------------------------------------------------------
# Omnipose-style intensity augmentation
# --------------------------------------------------------------------------------------------


def _augment_channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensity augmentation of one channel already scaled to [0, 1] (float32, modified)."""
    x = np.power(x, rng.triangular(0.75, 1.0, 2.5), out=x)
    if rng.random() < 0.5:  # defocus
        x = ndi.gaussian_filter(x, rng.uniform(0.0, 2.0), mode="reflect", truncate=3.0)
    if rng.random() < 0.5:  # clip the extreme 0-0.1 % at each end and stretch
        tail = rng.uniform(0.0, 0.1)
        lo, hi = (float(v) for v in np.percentile(x[::2, ::2], [tail, 100.0 - tail]))
        if hi > lo:
            x = np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0, out=x)
    if rng.random() < 0.5:  # speckle noise, variance up to 1e-2
        sigma = math.sqrt(rng.uniform(0.0, 1e-2))
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        x += x * (noise * np.float32(sigma))
    if rng.random() < 0.5:  # 0.1 % salt and pepper
        n = max(1, round(1e-3 * x.size))
        x.reshape(-1)[rng.integers(0, x.size, n)] = rng.integers(0, 2, n)
    if rng.random() < 0.5:  # bit-depth reduction of a 16-bit version
        step = 2.0 ** round(rng.triangular(0.0, 8.0, 14.0))
        np.clip(x, 0.0, 1.0, out=x)
        x = np.floor(x * (65535.0 / step)) * (step / 65535.0)
    return np.clip(x, 0.0, 1.0, out=x)


def intensity_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random intensity changes per channel, after Omnipose's training augmentation.

    Each channel is scaled to [0, 1] by its minimum and maximum, then: gamma ~ triangular(0.75,
    1, 2.5) always, and each with p = 0.5 a Gaussian defocus (sigma ~ U(0, 2)), a clip of the
    extreme 0-0.1 % with contrast stretch, speckle noise (variance ~ U(0, 1e-2)), 0.1 %
    salt-and-pepper pixels and a bit-depth reduction (drop ~triangular(0, 8, 14) of 16 bits).
    The result is mapped back to the channel's original minimum and maximum, so the value range
    given by the shared normalisation is kept. Omnipose's attenuated border "line artifact" is
    not reproduced. Constant channels are returned unchanged.

    Parameters
    ----------
    image
        (C, Y, X) or (Y, X), normalised (roughly 0..1).
    rng
        Source of all randomness.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape; the input is not modified.
    """
    img = np.asarray(image, dtype=np.float32)
    channels = img.reshape(-1, *img.shape[-2:])
    out = np.empty(channels.shape, dtype=np.float32)
    for c, channel in enumerate(channels):
        lo, hi = float(channel.min()), float(channel.max())
        if not hi > lo:  # constant (or NaN) channel
            out[c] = channel
            continue
        x = (channel - np.float32(lo)) * np.float32(1.0 / (hi - lo))
        out[c] = _augment_channel(x, rng) * np.float32(hi - lo) + np.float32(lo)
    return out.reshape(img.shape)


# --------------------------------------------------------------------------------------------
# DeLTA operations
# --------------------------------------------------------------------------------------------

#: DeLTA's 2D segmentation example settings.
DELTA_DEFAULT_OPS: dict[str, Any] = {
    "rotation": 2.0,
    "zoom": 0.15,
    "horizontal_flip": True,
    "vertical_flip": True,
    "illumination_voodoo": True,
    "gaussian_noise": 0.03,
    "gaussian_blur": 1.0,
}

_BOOL_OPS = (
    "illumination_voodoo",
    "histogram_voodoo",
    "horizontal_flip",
    "vertical_flip",
    "rotations_90d",
)
# name -> (largest allowed value, what the number means)
_NUMBER_OPS = {
    "gaussian_noise": (math.inf, "the largest noise standard deviation"),
    "gaussian_blur": (math.inf, "the largest blur sigma in pixels"),
    "rotation": (180.0, "the largest rotation in degrees (0-180)"),
    "zoom": (math.inf, "the largest extra zoom (0.15 = up to 15 %)"),
    "shiftX": (1.0, "the largest shift as a fraction of the width (0-1)"),
    "shiftY": (1.0, "the largest shift as a fraction of the height (0-1)"),
}
_ELASTIC_DEFAULT = {"sigma": 10.0, "points": 5}
_VALID_OPS = sorted([*_BOOL_OPS, *_NUMBER_OPS, "elastic_deformation"])


def _validate_ops(ops: Any, source: str) -> dict[str, Any]:
    """Check a DeLTA operations mapping and return it with normalised values."""
    if not isinstance(ops, Mapping):
        raise CellsegError(
            f"{source}: expected a mapping of augmentation operations to settings, "
            f"got {type(ops).__name__}. Valid operations: {', '.join(_VALID_OPS)}"
        )
    unknown = [str(k) for k in ops if k not in _VALID_OPS]
    if unknown:
        raise CellsegError(
            f"{source}: unknown augmentation operation(s) {', '.join(map(repr, unknown))}. "
            f"Valid operations: {', '.join(_VALID_OPS)}"
        )
    out: dict[str, Any] = {}
    for name, value in ops.items():
        if name in _BOOL_OPS:
            if not isinstance(value, bool):
                raise CellsegError(f"{source}: {name!r} must be true or false, got {value!r}")
            out[name] = value
        elif name in _NUMBER_OPS:
            top, meaning = _NUMBER_OPS[name]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0 <= value <= top:
                raise CellsegError(
                    f"{source}: {name!r} must be a number >= 0 giving {meaning}, got {value!r}"
                )
            out[name] = float(value)
        else:
            out[name] = _validate_elastic(value, source)
    return out


def _validate_elastic(value: Any, source: str) -> dict[str, Any] | bool:
    hint = "false, true (sigma 10, points 5) or a mapping {sigma: >0, points: integer >= 2}"
    if value is False:
        return False
    if value is True:
        return dict(_ELASTIC_DEFAULT)
    if not isinstance(value, Mapping) or set(value) - set(_ELASTIC_DEFAULT):
        raise CellsegError(f"{source}: 'elastic_deformation' must be {hint}, got {value!r}")
    sigma = value.get("sigma", _ELASTIC_DEFAULT["sigma"])
    points = value.get("points", _ELASTIC_DEFAULT["points"])
    sigma_ok = isinstance(sigma, int | float) and not isinstance(sigma, bool) and sigma > 0
    points_ok = isinstance(points, int) and not isinstance(points, bool) and points >= 2
    if not (sigma_ok and points_ok):
        raise CellsegError(f"{source}: 'elastic_deformation' must be {hint}, got {value!r}")
    return {"sigma": float(sigma), "points": points}


def load_augment_ops(path: str | Path) -> dict[str, Any]:
    """Read a DeLTA augmentation operations dict from a yaml or json file.

    The file holds a mapping of operation names to settings, e.g.
    ``{rotation: 2, zoom: 0.15, horizontal_flip: true, elastic_deformation: {sigma: 10,
    points: 5}}``; ``.json`` files are read as JSON, anything else as YAML. An empty file means
    no operations. See `delta_augment` for the operations.

    Parameters
    ----------
    path
        The yaml or json file.

    Returns
    -------
    dict
        The operations with normalised values (floats, bools, elastic settings as a dict).

    Raises
    ------
    CellsegError
        When the file cannot be read or parsed, names an unknown operation (the message lists
        the valid ones) or gives a setting of the wrong type or range.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CellsegError(f"cannot read augmentation operations file {path}: {reason}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise CellsegError(f"{path}: not valid {kind}: {exc}") from exc
    return _validate_ops({} if data is None else data, str(path))


def _voodoo_curve(knots_y: np.ndarray, n: int) -> np.ndarray:
    """PCHIP curve through values ``knots_y`` at evenly spaced knots, evaluated at n points."""
    knots_x = np.linspace(0.0, 1.0, len(knots_y))
    return PchipInterpolator(knots_x, knots_y)(np.linspace(0.0, 1.0, n))


def _illumination_voodoo(arr: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Multiply rows by ``profile`` and stretch back to the original min and max."""
    lo, hi = float(arr.min()), float(arr.max())
    out = arr * profile[:, None].astype(np.float32)
    new_lo, new_hi = float(out.min()), float(out.max())
    if new_hi <= new_lo:
        return out
    return (out - np.float32(new_lo)) * np.float32((hi - lo) / (new_hi - new_lo)) + np.float32(lo)


def _histogram_voodoo(arr: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map intensities, scaled to [0, 1] by their min and max, through the monotone ``lut``."""
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return arr
    grid = np.linspace(lo, hi, len(lut))
    return np.interp(arr, grid, lo + lut * (hi - lo)).astype(np.float32)


def _elastic_sampler(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float, points: int
) -> _Sampler:
    """Random smooth deformation: N(0, sigma) displacements on a points x points grid spanning
    the image, interpolated with cubic splines (as ``elasticdeform.deform_grid``)."""
    grid = rng.normal(0.0, sigma, size=(2, points, points))
    gy = np.linspace(0.0, points - 1, shape[0])[:, None]
    gx = np.linspace(0.0, points - 1, shape[1])[None, :]
    coords = np.broadcast_arrays(gy, gx)
    dy = ndi.map_coordinates(grid[0], coords, order=3, mode="nearest")
    dx = ndi.map_coordinates(grid[1], coords, order=3, mode="nearest")
    cy = (np.arange(shape[0])[:, None] + dy).astype(np.float32)
    cx = (np.arange(shape[1])[None, :] + dx).astype(np.float32)
    return _Sampler(cy, cx, shape, "reflect")


def delta_augment(
    images: Sequence[np.ndarray],
    ops: Mapping[str, Any],
    orders: Sequence[int],
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Apply DeLTA's augmentation operations to a stack of aligned arrays.

    All arrays get the same geometric operations; the intensity operations (and their random
    draws, shared) apply only to arrays whose interpolation order is > 0 (DeLTA's rule), so a
    weight map passed with order 0 keeps its values. Operations, in the order applied:

    - ``illumination_voodoo`` (bool): rows multiplied by a PCHIP profile through 5 random values
      in [0.1, 0.9], then stretched back to the original min and max;
    - ``histogram_voodoo`` (bool): monotone PCHIP remap of intensities (scaled to [0, 1]) with
      0 -> 0, 1 -> 1 and 3 sorted random values in [0.1, 0.9] at 0.25, 0.5, 0.75;
    - ``gaussian_noise`` (float): additive N(0, sigma), sigma ~ U(0, value) (DeLTA 2; not
      clipped, images here are normalised by percentiles, not to [0, 1]);
    - ``gaussian_blur`` (float): Gaussian blur with sigma ~ U(0, value);
    - ``elastic_deformation`` ({sigma, points}): smooth random deformation;
    - ``horizontal_flip``, ``vertical_flip`` (bool): each with p = 0.5;
    - ``rotations_90d`` (bool): rotation by k x 90 degrees, k ~ {0, 1, 2, 3};
    - ``rotation`` (degrees) ~ U(-value, value), ``zoom`` 1 + min(Exp(mean value/3), value),
      ``shiftX``/``shiftY`` ~ U(-value, value) x width/height: one affine about the centre, edge
      pixels repeated outside.

    Order-0 arrays are resampled by nearest neighbour and keep their dtype and values (label
    ids survive; DeLTA 3's removal of pixels where cells touch after elastic deformation applies
    to binary masks and is not done here).

    Parameters
    ----------
    images
        Arrays of shape (Y, X) or (C, Y, X), all with the same (Y, X).
    ops
        Operations dict (as from `load_augment_ops`; validated again here).
    orders
        Interpolation order of each array: 0 (nearest) or > 0 (bilinear; DeLTA's cubic order 3
        is accepted and resampled bilinearly).
    rng
        Source of all randomness.

    Returns
    -------
    list of numpy.ndarray
        The augmented arrays: float32 for order > 0, the input dtype for order 0. Shapes are kept
        except that a 90 degree rotation swaps Y and X of non-square arrays.
    """
    ops = _validate_ops(ops, "augmentation operations")
    arrays = [np.asarray(a) for a in images]
    if len(orders) != len(arrays):
        raise ValueError(f"{len(arrays)} arrays but {len(orders)} interpolation orders")
    if len({a.shape[-2:] for a in arrays}) > 1:
        raise ValueError(f"arrays differ in (Y, X): {[a.shape for a in arrays]}")
    arrays = [a.astype(np.float32) if o > 0 else a.copy() for a, o in zip(arrays, orders)]
    if not arrays:
        return []
    shape = arrays[0].shape[-2:]
    smooth = [i for i, o in enumerate(orders) if o > 0]

    if ops.get("illumination_voodoo"):
        profile = _voodoo_curve(rng.uniform(0.1, 0.9, 5), shape[0])
        for i in smooth:
            arrays[i] = _illumination_voodoo(arrays[i], profile)
    if ops.get("histogram_voodoo"):
        knots = np.concatenate([[0.0], np.sort(rng.uniform(0.1, 0.9, 3)), [1.0]])
        lut = _voodoo_curve(knots, 1024)
        for i in smooth:
            arrays[i] = _histogram_voodoo(arrays[i], lut)
    if ops.get("gaussian_noise"):
        sigma = np.float32(rng.uniform(0.0, ops["gaussian_noise"]))
        for i in smooth:
            arrays[i] += sigma * rng.standard_normal(arrays[i].shape, dtype=np.float32)
    if ops.get("gaussian_blur"):
        sigma = rng.uniform(0.0, ops["gaussian_blur"])
        for i in smooth:
            spatial = (0.0,) * (arrays[i].ndim - 2) + (sigma, sigma)
            arrays[i] = ndi.gaussian_filter(arrays[i], spatial, mode="reflect")

    if ops.get("elastic_deformation"):
        elastic = ops["elastic_deformation"]
        sampler = _elastic_sampler(rng, shape, elastic["sigma"], elastic["points"])
        arrays = [sampler.sample(a, min(o, 1)) for a, o in zip(arrays, orders)]
    if ops.get("horizontal_flip") and rng.random() < 0.5:
        arrays = [a[..., ::-1] for a in arrays]
    if ops.get("vertical_flip") and rng.random() < 0.5:
        arrays = [a[..., ::-1, :] for a in arrays]
    if ops.get("rotations_90d"):
        k = int(rng.integers(4))
        arrays = [np.rot90(a, k, axes=(-2, -1)) for a in arrays]

    angle = rng.uniform(-ops["rotation"], ops["rotation"]) if ops.get("rotation") else 0.0
    zoom = 1.0 + min(rng.exponential(ops["zoom"] / 3), ops["zoom"]) if ops.get("zoom") else 1.0
    shape = arrays[0].shape[-2:]
    shift_y = rng.uniform(-1, 1) * ops["shiftY"] * shape[0] if ops.get("shiftY") else 0.0
    shift_x = rng.uniform(-1, 1) * ops["shiftX"] * shape[1] if ops.get("shiftX") else 0.0
    if angle or zoom != 1.0 or shift_y or shift_x:
        matrix = _rotation(math.radians(angle)) / zoom
        sampler = _centred_sampler(matrix, shape, "nearest", (shift_y, shift_x))
        arrays = [sampler.sample(a, min(o, 1)) for a, o in zip(arrays, orders)]
    return [np.ascontiguousarray(a) for a in arrays]


# --------------------------------------------------------------------------------------------
# CLB trimming and augmentation
# --------------------------------------------------------------------------------------------

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
        forward = _rotation(math.radians(rng.uniform(0.0, 359.0))) @ forward
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
        sampler = _centred_sampler(inverse, shape, "reflect", shift)
        yield sampler.sample(image, 1), sampler.sample(labels, 0)
