"""Omnipose-style random warped crops of an image, its labels and extra maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from napari_cellseg.augment.resample import Sampler, affine_sampler, rotation


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
    return rotation(theta) @ np.diag(signs / scale)


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
    best: tuple[int, Sampler, np.ndarray] | None = None
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
        sampler = affine_sampler(
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
