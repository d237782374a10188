"""Probability-map reconstructions: DeLTA U-Net and CLB DCAN outputs to instance labels.

- :func:`unet_masks`: probability threshold, then a distance-transform watershed from h-domes
  that splits touching blobs.
- :func:`dcan_masks`: object-not-contour seeds grown back into the object mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.reconstruction.cleanup import STRUCT8, check_probability, remove_small, renumber


def unet_masks(
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    min_size: int = 15,
    watershed: bool = True,
    split_depth: float = 2.0,
) -> np.ndarray:
    """Instance labels from a U-Net foreground probability map.

    Parameters
    ----------
    prob
        ``(Y, X)`` foreground **probability** in [0, 1] (apply a sigmoid to logits first).
    threshold
        Foreground is ``prob > threshold``.
    min_size
        Objects smaller than this (pixels) are removed.
    watershed
        Split touching blobs with a watershed of the distance transform; without it objects
        are the 8-connected components of the foreground.
    split_depth
        A maximum of the distance transform seeds its own object only if it stands at least
        this many pixels above the saddle to any higher maximum (h-maxima). Larger values
        split less; narrow necks between round cells are split, noisy outlines are not.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels ``(Y, X)`` numbered 1..N.
    """
    prob = np.asarray(prob, dtype=np.float32)
    check_probability(prob, "prob")
    fg = prob > threshold
    if watershed:
        labels = _distance_watershed(fg, split_depth)
    else:
        labels = ndi.label(fg, STRUCT8)[0].astype(np.int32)
    return renumber(remove_small(labels, min_size))


def dcan_masks(
    obj: np.ndarray, contour: np.ndarray, *, threshold: float = 0.5, min_size: int = 15
) -> np.ndarray:
    """Instance labels from DCAN object and contour probabilities.

    Seeds are the 4-connected components of ``obj * (1 - contour) > threshold`` ("cell and not
    boundary"); a watershed on the contour probability grows them back into the object mask
    ``obj > threshold``. Object regions that hold no seed become objects of their own.

    Parameters
    ----------
    obj, contour
        ``(Y, X)`` object and contour **probabilities** in [0, 1].
    threshold
        Threshold for the seeds and the object mask.
    min_size
        Objects smaller than this (pixels) are removed.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels ``(Y, X)`` numbered 1..N.
    """
    from skimage.segmentation import watershed

    obj = np.asarray(obj, dtype=np.float32)
    contour = np.asarray(contour, dtype=np.float32)
    if obj.shape != contour.shape or obj.ndim != 2:
        raise ValueError(
            f"obj and contour must be (Y, X) of one shape: {obj.shape}, {contour.shape}"
        )
    check_probability(obj, "obj")
    check_probability(contour, "contour")
    mask = obj > threshold
    seeds = ndi.label(obj * (1.0 - contour) > threshold)[0]
    labels = watershed(contour, seeds, mask=mask).astype(np.int32)
    labels = _label_unseeded(labels, mask)
    return renumber(remove_small(labels, min_size))


def _distance_watershed(fg: np.ndarray, split_depth: float) -> np.ndarray:
    """Split touching blobs: watershed of the distance transform from its h-domes.

    A seed is a regional maximum of the reconstruction of ``dist - split_depth`` under
    ``dist``: one per dome at least ``split_depth`` high. (``skimage``'s ``h_maxima`` keeps
    every top pixel of a dome, so two equal peaks over a shallow saddle became two seeds.)
    """
    from skimage.morphology import local_maxima, reconstruction
    from skimage.segmentation import watershed

    if not fg.any():
        return np.zeros(fg.shape, dtype=np.int32)
    dist = ndi.distance_transform_edt(fg)
    domes = reconstruction(dist - split_depth, dist)
    markers = ndi.label(local_maxima(domes, connectivity=2) & fg, STRUCT8)[0]
    labels = watershed(-dist, markers, mask=fg).astype(np.int32)
    return _label_unseeded(labels, fg)


def _label_unseeded(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give the components of ``mask`` that the watershed did not reach labels of their own."""
    left = mask & (labels == 0)
    if not left.any():
        return labels
    extra, _ = ndi.label(left, STRUCT8)
    top = int(labels.max())
    return np.where(left, extra + top, labels).astype(np.int32)


# --------------------------------------------------------------------------- shared cleanup
