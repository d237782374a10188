"""DCAN (CLB) targets: object and contour maps with a validity mask.

Pure numpy/scipy (no torch).

``dcan_targets`` returns a float32 ``(3, Y, X)`` array ``[objects, contours, valid]`` for
``napari_cellseg.losses.dcan_loss``:

``objects``
    1 on object pixels that are not contour (CLB: ``objects = gt > 0`` and not boundary).
``contours``
    1 on the pixels within ``boundary_thickness / 2`` of a change of label (object/background
    and object/object), on both sides of it: 2 px thick by default, like CLB's
    ``find_boundaries`` dilated to ``boundary_thickness``. The image edge is not a contour.
``valid``
    1 where the pixel counts in the loss, 0 on CLB blobs (label 1) with ``blobs='ignore'``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.targets.omni import label_image
from napari_cellseg.targets.weights import blob_pixels

DCAN_CHANNELS = ("objects", "contours", "valid")


def contours(labels: np.ndarray, thickness: int = 2) -> np.ndarray:
    """Pixels with a different label within ``thickness / 2`` (Euclidean), on both sides.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label matrix (background is a region like the others).
    thickness : int, default 2
        Contour thickness in pixels (>= 2): 2 gives the 4-connected "thick" boundaries of
        ``skimage.segmentation.find_boundaries``.

    Returns
    -------
    numpy.ndarray
        Boolean ``(Y, X)`` mask.
    """
    if thickness < 2:
        raise ValueError(f"boundary thickness must be >= 2 pixels, got {thickness}")
    lab = label_image(labels)
    radius = thickness / 2.0
    reach = int(np.floor(radius))
    offsets = np.arange(-reach, reach + 1)
    disc = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    # a disc holds two labels exactly when its maximum and minimum differ
    return ndi.maximum_filter(lab, footprint=disc) != ndi.minimum_filter(lab, footprint=disc)


def dcan_targets(
    labels: np.ndarray, *, boundary_thickness: int = 2, blobs: str | None = "ignore"
) -> np.ndarray:
    """Object, contour and validity targets for the DCAN heads.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label matrix, 0 = background (CLB: objects 2, 3, ...; 1 = blobs).
    boundary_thickness : int, default 2
        Contour thickness in pixels (CLB default 2), see :func:`contours`.
    blobs : {'ignore', 'object'} or None, default 'ignore'
        ``'ignore'``: label 1 is left out of the loss (``valid`` 0; objects and contours 0
        there), its outline still counts as contour of the neighbouring cells. ``'object'``
        or ``None``: label 1 is an ordinary object (CLB's default ``remove_blobs=False``; use
        ``None`` for data without the blob convention).

    Returns
    -------
    numpy.ndarray
        float32 ``(3, Y, X)`` in ``DCAN_CHANNELS`` order.
    """
    lab = label_image(labels)
    contour = contours(lab, boundary_thickness)
    out = np.stack([(lab > 0) & ~contour, contour, np.ones(lab.shape, dtype=bool)])
    out = out.astype(np.float32)
    ignored = blob_pixels(lab, blobs)
    if ignored is not None:
        out[:, ignored] = 0.0
    return out
