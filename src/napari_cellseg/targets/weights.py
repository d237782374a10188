"""DeLTA-style U-Net targets: binary cell masks and pixel weight maps.

Pure numpy/scipy/scikit-image (no torch).

``unet_targets`` returns a float32 ``(2, Y, X)`` array ``[mask, weight]`` for
``napari_cellseg.losses.weighted_bce_loss``:

``mask``
    1 on cells, 0 on background. Touching cells are separated by a 1-pixel gap (the pixels of
    the higher label that touch a lower one, 8-connectivity) so that a binary prediction can
    be split into cells by connected components, as in DeLTA's ground truth.
``weight``
    The pixel weight map: ``> 0`` where the pixel counts with that weight; 0 on a background
    pixel means DeLTA's rule (the weight becomes ``sigmoid(logit)``, so unweighted background
    costs in proportion to false-positive confidence); 0 on a mask pixel means *ignored*
    (CLB blobs with ``blobs='ignore'``: their mask is 1 and their weight 0, so they add
    nothing to the loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from napari_cellseg.targets.omni import edt, label_image

WEIGHT_MAPS = ("seg_weights", "seg_weights_2D")
BLOB_LABEL = 1
BLOB_MODES = ("ignore", "object")

# the exponential term of seg_weights is dropped where it is below this fraction of w0
_SEG_WEIGHTS_TOL = 1e-6
# DeLTA's seg_weights_2D morphology: closing with a 20-px-wide disc, erosion by 1 px
_CLOSING_RADIUS = 10.0
_EIGHT = np.ones((3, 3), dtype=bool)


def blob_pixels(labels: np.ndarray, blobs: str | None) -> np.ndarray | None:
    """Pixels to leave out of the loss under the CLB blob convention.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label matrix.
    blobs : {'ignore', 'object'} or None
        ``'ignore'``: label ``BLOB_LABEL`` (1) marks regions too hard to annotate, left out of
        the loss. ``'object'`` or ``None``: label 1 is an ordinary object (use this for
        datasets without the CLB convention, e.g. DeLTA or Omnipose data, where label 1 is a
        real cell).

    Returns
    -------
    numpy.ndarray or None
        Boolean mask of ignored pixels, or ``None`` when nothing is ignored.
    """
    if blobs is not None and blobs not in BLOB_MODES:
        raise ValueError(f"blobs must be one of {BLOB_MODES} or None, got {blobs!r}")
    if blobs != "ignore":
        return None
    return np.asarray(labels) == BLOB_LABEL


def _objects(mask: np.ndarray) -> np.ndarray:
    """Objects of ``mask`` as labels without contact (binary masks: 8-connected components)."""
    lab = label_image(mask)
    values = lab[lab > 0]
    if values.size and values.min() == values.max():
        lab, _ = ndi.label(lab > 0, structure=_EIGHT)
    return separate_touching(lab)


def separate_touching(labels: np.ndarray) -> np.ndarray:
    """Carve a 1-pixel gap between touching labels.

    The pixels of each label that are 8-adjacent to a smaller non-zero label are set to 0, so
    no two labels touch, not even diagonally, and the binary mask splits into the labels by
    connected components.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label matrix.

    Returns
    -------
    numpy.ndarray
        The label matrix with gaps (a copy).
    """
    lab = label_image(labels).copy()
    # smallest non-zero label among the 8 neighbours (background counts as +inf)
    big = np.iinfo(lab.dtype).max
    masked = np.where(lab > 0, lab, big)
    lowest = ndi.minimum_filter(masked, footprint=_EIGHT, mode="nearest")
    lab[lowest < lab] = 0
    return lab


def seg_weights(
    mask: np.ndarray,
    classweights: tuple[float, float] = (1.0, 1.0),
    w0: float = 12.0,
    sigma: float = 2.0,
) -> np.ndarray:
    """U-Net paper weight map (Ronneberger et al. 2015) with DeLTA's defaults.

    ``w = cw[0] + w0 * exp(-(d1 + d2)**2 / (2 * sigma**2))`` on background, where ``d1`` and
    ``d2`` are the Euclidean distances to the nearest and second-nearest object, and
    ``w = cw[1]`` on objects.

    Parameters
    ----------
    mask : numpy.ndarray
        2D label matrix, or a binary mask (then its 8-connected components are the objects).
        Touching labels are first separated by 1-px gaps (:func:`separate_touching`), as in
        the mask of :func:`unet_targets`.
    classweights : (float, float), default (1.0, 1.0)
        ``(background, cell)`` weights.
    w0 : float, default 12.0
        Amplitude of the separation term (U-Net paper: 10, DeLTA: 12).
    sigma : float, default 2.0
        Width of the separation term in pixels (U-Net paper: about 5, DeLTA: 2).

    Returns
    -------
    numpy.ndarray
        float32 ``(Y, X)`` weights.

    Notes
    -----
    Each object's distance map is computed in its bounding box grown by the distance beyond
    which the separation term is below ``1e-6 * w0``; the term is 0 past it. With fewer than
    two objects there is no separation term.
    """
    lab = _objects(mask)
    cw_bg, cw_cell = (float(c) for c in classweights)
    weights = np.full(lab.shape, cw_bg, dtype=np.float32)
    boxes = ndi.find_objects(lab)
    if w0 and sum(box is not None for box in boxes) >= 2:
        reach = sigma * math.sqrt(2.0 * math.log(1.0 / _SEG_WEIGHTS_TOL))
        margin = math.ceil(reach)
        d1 = np.full(lab.shape, np.inf, dtype=np.float32)
        d2 = np.full(lab.shape, np.inf, dtype=np.float32)
        for index, box in enumerate(boxes, start=1):
            if box is None:
                continue
            window = tuple(
                slice(max(s.start - margin, 0), min(s.stop + margin, n))
                for s, n in zip(box, lab.shape)
            )
            # scipy beats the separable edt() on windows this small
            dist = ndi.distance_transform_edt(lab[window] != index).astype(np.float32)
            dist[dist > reach] = np.inf
            near, second = d1[window], d2[window]
            np.minimum(second, np.maximum(near, dist), out=second)
            np.minimum(near, dist, out=near)
        sep = np.exp(-((d1 + d2) ** 2) / np.float32(2.0 * sigma**2))
        weights += np.float32(w0) * sep
    weights[lab > 0] = cw_cell
    return weights


def _seg2d_parts(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cells, inter-cell border, eroded cells and the skeletons of both (DeLTA seg_weights_2D).

    Morphology by exact Euclidean distances: the closing uses a disc of radius 10 px (DeLTA:
    20-px ellipse) with background beyond the image, so the space between a cell and the
    crop edge is not taken for a gap between cells; the erosion removes the 1-px rim of each
    cell (3x3 cross) but not at the image edge.
    """
    cells = _objects(mask) > 0
    pad = math.ceil(_CLOSING_RADIUS) + 1
    dilated = edt(~np.pad(cells, pad)) <= _CLOSING_RADIUS
    closed = (edt(dilated) > _CLOSING_RADIUS)[pad:-pad, pad:-pad]
    border = closed & ~cells
    eroded = ndi.binary_erosion(cells, border_value=1)
    return cells, border, eroded, skeletonize(eroded), skeletonize(border)


def seg_weights_2D(mask: np.ndarray, classweights: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """DeLTA's weight map for crowded 2D colonies (agar pads).

    Cell pixels get ``1 / (d + 1)**2`` with ``d`` the distance to the skeleton of the eroded
    cells; pixels of the narrow gaps between cells (closing minus cells) get
    ``cw[1] / (d + 1)**2`` with ``d`` the distance to the gap skeleton; the cell skeleton is
    set to ``cw[0]``, the gap skeleton to ``cw[1]``; cell and gap pixels still at 0 (the cell
    rim) get ``1/255``; the rest of the background stays 0 (DeLTA's loss then weights it by
    ``sigmoid(logit)``).

    Parameters
    ----------
    mask : numpy.ndarray
        2D label matrix (touching labels are first separated by 1-px gaps, as in
        :func:`unet_targets`) or binary mask.
    classweights : (float, float), default (1.0, 1.0)
        ``(cell skeleton, gap skeleton)`` weights, see :func:`estimate_seg2D_classweights`.

    Returns
    -------
    numpy.ndarray
        float32 ``(Y, X)`` weights.
    """
    cw_cell, cw_border = (np.float32(c) for c in classweights)
    cells, border, eroded, cell_skel, border_skel = _seg2d_parts(mask)
    weights = np.zeros(cells.shape, dtype=np.float32)
    if cell_skel.any():
        weights[eroded] = 1.0 / (edt(~cell_skel)[eroded] + 1.0) ** 2
    if border_skel.any():
        weights[border] = cw_border / (edt(~border_skel)[border] + 1.0) ** 2
    weights[cell_skel] = cw_cell
    weights[border_skel] = cw_border
    weights[(cells | border) & (weights == 0)] = 1.0 / 255.0
    return weights


def estimate_seg2D_classweights(
    masks: Iterable[np.ndarray],
) -> tuple[float, float]:
    """Class weights for :func:`seg_weights_2D` from a set of masks.

    Counts cell-skeleton pixels ``c1`` and gap-skeleton pixels ``c2`` over all masks and
    returns ``(c2 / max(c1, c2), c1 / max(c1, c2))``: the rarer skeleton gets weight 1.

    Parameters
    ----------
    masks : iterable of numpy.ndarray
        2D label matrices (touching labels are first separated as in :func:`unet_targets`)
        or binary masks.

    Returns
    -------
    (float, float)
        ``(cell skeleton, gap skeleton)`` weights; ``(1.0, 1.0)`` when both counts are 0.
    """
    c1 = c2 = 0
    for mask in masks:
        *_, cell_skel, border_skel = _seg2d_parts(mask)
        c1 += int(np.count_nonzero(cell_skel))
        c2 += int(np.count_nonzero(border_skel))
    top = max(c1, c2)
    if top == 0:
        return 1.0, 1.0
    return c2 / top, c1 / top


def unet_targets(
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    weight_map: str = "seg_weights",
    blobs: str | None = "ignore",
    classweights: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Binary mask and pixel weights for the DeLTA-style U-Net.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label matrix (or binary mask: its 8-connected components are the cells).
    weights : numpy.ndarray, optional
        A precomputed weight map (DeLTA's ``wei/`` files, warped with the crop); used as given
        instead of ``weight_map``.
    weight_map : {'seg_weights', 'seg_weights_2D'}, default 'seg_weights'
        The map computed when ``weights`` is not given (:func:`seg_weights` with DeLTA's
        w0=12, sigma=2, or :func:`seg_weights_2D`).
    blobs : {'ignore', 'object'} or None, default 'ignore'
        CLB blob convention for label 1, see :func:`blob_pixels`. Pass ``None`` (or
        ``'object'``) for data where label 1 is an ordinary cell.
    classweights : (float, float), default (1.0, 1.0)
        Passed to the weight map.

    Returns
    -------
    numpy.ndarray
        float32 ``(2, Y, X)``: mask (cells separated by 1-px gaps; 1 on ignored blobs) and
        weights (0 on ignored blobs).
    """
    if weight_map not in WEIGHT_MAPS:
        raise ValueError(f"weight_map must be one of {WEIGHT_MAPS}, got {weight_map!r}")
    lab = label_image(labels)
    ignored = blob_pixels(lab, blobs)
    if ignored is not None:
        lab = np.where(ignored, 0, lab)
    cells = _objects(lab)
    if weights is not None:
        weight = np.asarray(weights, dtype=np.float32)
        if weight.shape != lab.shape:
            raise ValueError(f"weights shape {weight.shape} differs from labels {lab.shape}")
    elif weight_map == "seg_weights":
        weight = seg_weights(cells, classweights)
    else:
        weight = seg_weights_2D(cells, classweights)
    out = np.stack([cells > 0, weight]).astype(np.float32)
    if ignored is not None:
        out[0][ignored] = 1.0
        out[1][ignored] = 0.0
    return out
