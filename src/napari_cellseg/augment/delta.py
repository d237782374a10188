"""DeLTA's augmentation operations: the operations file, its checks and their application."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import ndimage as ndi
from scipy.interpolate import PchipInterpolator

from napari_cellseg.augment.resample import Sampler, centred_sampler, rotation
from napari_cellseg.errors import CellsegError

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
) -> Sampler:
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
    return Sampler(cy, cx, shape, "reflect")


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
        matrix = rotation(math.radians(angle)) / zoom
        sampler = centred_sampler(matrix, shape, "nearest", (shift_y, shift_x))
        arrays = [sampler.sample(a, min(o, 1)) for a, o in zip(arrays, orders)]
    return [np.ascontiguousarray(a) for a in arrays]
