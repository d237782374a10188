"""DeLTA's pixel weights for training the tracking network."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.errors import CellsegError

#: Weight of the tracked cell's skeleton (DeLTA).
SKELETON_WEIGHT = 255.0


def tracking_weights(
    track: np.ndarray, segall: np.ndarray, halo_distance: float = 50.0
) -> np.ndarray:
    """Pixel weights of one tracking sample (DeLTA's ``tracking_weights``).

    - Where the seed cell vanished (``track`` empty): ``1 + 20 * segall``, so that every cell
      of the frame is learned as "not this one".
    - Otherwise, inside the tracked cell(s) (mother and daughter): ``1 + 41 * d`` with ``d``
      the distance to their outline rescaled to [0, 1]; their skeleton: 255; other cells:
      ``63 * h / halo_distance`` with ``h = halo_distance - distance to the tracked cells``,
      at least 1 (cells near the tracked one weigh most, far ones weigh 63/50); background: 1.

    DeLTA then multiplies everything by 100. That scale is left out here: the loss divides
    by the square root of the weight sum and Adam's steps do not depend on the gradient's scale.

    Parameters
    ----------
    track
        ``(Y, X)`` mask of the seed cell at time t (and its daughter), the ``mot_dau`` image.
    segall
        ``(Y, X)`` mask (or labels) of all cells at time t.
    halo_distance
        Distance in pixels over which other cells' weight falls off.

    Returns
    -------
    numpy.ndarray
        float32 ``(Y, X)`` weights (all >= 1 while ``halo_distance <= 63``).
    """
    from skimage.morphology import skeletonize

    tracked = np.asarray(track) > 0
    cells = np.asarray(segall) > 0
    if tracked.shape != cells.shape:
        raise CellsegError(
            f"the tracked mask {tracked.shape} and the all-cells mask {cells.shape} differ in "
            "shape; they must be the same window"
        )
    if halo_distance <= 0:
        raise CellsegError(f"halo_distance must be positive, not {halo_distance}")
    if not tracked.any():
        return (1.0 + 20.0 * cells).astype(np.float32)
    weights = np.ones(tracked.shape, np.float32)
    dist_in = ndi.distance_transform_edt(tracked)[tracked]
    span = float(np.ptp(dist_in))
    scaled = (dist_in - dist_in.min()) / span if span > 0 else np.zeros_like(dist_in)
    weights[tracked] = 1.0 + 41.0 * scaled
    weights[skeletonize(tracked)] = SKELETON_WEIGHT
    others = cells & ~tracked
    if others.any():
        halo = halo_distance - ndi.distance_transform_edt(~tracked)[others]
        weights[others] = 63.0 * np.maximum(halo, 1.0) / halo_distance
    return weights
