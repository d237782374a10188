"""Mask reconstruction: network outputs to instance labels, one function per model family.

- :func:`omni_masks` (Omnipose-style flow + distance): foreground from the distance, pixels
  moved along the flow, and neighbouring pixels that end close together joined into objects.
- :func:`unet_masks` (DeLTA U-Net): probability threshold, then a distance-transform
  watershed that splits touching blobs.
- :func:`dcan_masks` (CLB DCAN): object-not-contour seeds grown back into the object mask.

All take numpy arrays and return ``int32`` labels ``(Y, X)``, 0 = background, objects
numbered 1..N. The cleanup helpers :func:`remove_small`, :func:`fill_label_holes` and
:func:`renumber` are shared by the three.

How :func:`omni_masks` groups pixels
------------------------------------
The flow field points away from cell edges toward each cell's skeleton. Every foreground pixel
takes ``niter`` unit Euler steps along the bilinearly sampled flow. With ``suppress`` the
speed is scaled by ``clip(1 + div / SUPPRESS_DIVERGENCE, 0, 1)``, ``div`` being the
divergence of the unit flow: pixels stop where the flow converges (the skeleton, the middle of
small or thin cells) and keep full speed where it diverges (interfaces between touching
cells). Two neighbouring pixels (8-connectivity) belong to one object when their end points
are less than ``LINK_DISTANCE`` (3 px) apart; objects are the connected components of that
graph. Pixels on both sides of an interface run
apart and lose their link, while the pixels of one cell, however elongated, curved or
irregular, stay linked through their neighbours: a rod is one object, not a string of sinks.
A few steps suffice (default 10): the pairs to separate are adjacent at the start and move
apart at up to 2 px per step, and longer runs only let noise in the flows tear cells apart.
(Taking the connected components of the rounded end points instead, as Omnipose does by
default, splits irregular and bent cells whose skeletons collect at several separate sinks.)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components

#: Divergence (1/px) of the unit flow at which suppression stops pixels completely.
SUPPRESS_DIVERGENCE = 0.5
#: Neighbouring pixels whose end points are closer than this (px) belong to one object.
LINK_DISTANCE = 3.0
#: Default number of Euler steps of :func:`omni_masks`.
DEFAULT_NITER = 10

# offsets (dy, dx) that visit every 8-neighbour pair once
_PAIR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))
_STRUCT8 = np.ones((3, 3), dtype=bool)


# --------------------------------------------------------------------------- omni


def omni_masks(
    flow: np.ndarray,
    dist: np.ndarray,
    boundary: np.ndarray | None = None,
    *,
    mask_threshold: float = 0.0,
    niter: int | None = None,
    flow_threshold: float = 0.4,
    min_size: int = 15,
    fill_holes: bool = True,
    suppress: bool = True,
    device: str = "cpu",
) -> np.ndarray:
    """Instance labels from Omnipose-style flow and distance outputs.

    Parameters
    ----------
    flow
        ``(2, Y, X)`` flow ``(flow_y, flow_x)`` pointing toward each cell's skeleton, in the
        units of the training target (the network output divided by
        ``targets.omni.FLOW_SCALE``). Only its direction is used for the dynamics; the
        consistency check divides it by its median length over the foreground.
    dist
        ``(Y, X)`` distance output: ``> 0`` inside cells (pixels), negative in background.
    boundary
        Optional ``(Y, X)`` boundary **probability** (sigmoid of the boundary logit). The link
        between two neighbouring pixels that are both boundary (``> 0.5``) and whose flows point
        away from each other is cut, which separates touching cells whose flows did not pull
        them apart.
    mask_threshold
        Foreground is ``dist > mask_threshold - 1`` connected to ``dist > mask_threshold``
        (hysteresis, as in Omnipose). Lower it to grow masks, raise it to shrink them.
    niter
        Euler steps; default :data:`DEFAULT_NITER`. ``0`` joins all touching foreground.
    flow_threshold
        Masks whose flow, recomputed from the mask with
        :func:`napari_cellseg.targets.omni.omni_targets`, differs from the predicted flow by a
        mean squared error above this are dropped. ``0`` disables the check (faster).
    min_size
        Objects smaller than this (pixels) are removed.
    fill_holes
        Fill holes inside each object.
    suppress
        Slow pixels down where the flow converges (see the module notes). Without it pixels
        keep unit speed and slide along skeletons toward separate sinks, which splits elongated
        and irregular cells; it is there to compare with Omnipose's ``--no_suppress``.
    device
        ``"cpu"`` integrates with numpy; a torch device name (``"cuda"``, ``"cuda:1"``,
        ``"mps"``) integrates with torch on that device.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels ``(Y, X)`` numbered 1..N.
    """
    flow = np.asarray(flow, dtype=np.float32)
    dist = np.asarray(dist, dtype=np.float32)
    if dist.ndim != 2 or flow.shape != (2, *dist.shape):
        raise ValueError(f"need flow (2, Y, X) and dist (Y, X), got {flow.shape} and {dist.shape}")
    if not (np.isfinite(flow).all() and np.isfinite(dist).all()):
        raise ValueError("flow and dist must be finite (no NaN or inf)")
    if boundary is not None:
        boundary = np.asarray(boundary, dtype=np.float32)
        if boundary.shape != dist.shape:
            raise ValueError(f"boundary has shape {boundary.shape}, dist {dist.shape}")
        _check_probability(boundary, "boundary")
    niter = DEFAULT_NITER if niter is None else int(niter)
    if niter < 0:
        raise ValueError(f"niter must be >= 0, got {niter}")

    fg = _hysteresis(dist, mask_threshold - 1.0, mask_threshold)
    if not fg.any():
        return np.zeros(dist.shape, dtype=np.int32)
    unit = _unit_flow(flow, fg)
    field = unit * _suppression(unit) if suppress else unit
    ys, xs = np.nonzero(fg)
    end = follow_flows(field, ys, xs, niter, device=device)
    labels = _link_components(ys, xs, end, dist.shape, unit, boundary)
    if flow_threshold > 0:
        labels = _drop_inconsistent(labels, flow, ys, xs, flow_threshold)
    labels = remove_small(labels, min_size)
    if fill_holes:
        labels = fill_label_holes(labels)
    return renumber(labels)


def _hysteresis(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values > low`` pixels 8-connected to a ``values > high`` pixel."""
    weak = values > low
    comp, n = ndi.label(weak, _STRUCT8)
    if n == 0:
        return weak
    keep = np.zeros(n + 1, dtype=bool)
    keep[comp[values > high]] = True
    keep[0] = False
    return keep[comp]


def _unit_flow(flow: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Flow scaled to unit length on the foreground, 0 elsewhere and where it vanishes."""
    norm = np.hypot(flow[0], flow[1])
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=fg & (norm > 1e-6))
    return flow * inv


def _suppression(unit: np.ndarray) -> np.ndarray:
    """Speed factor ``clip(1 + div / SUPPRESS_DIVERGENCE, 0, 1)`` of a unit flow field."""
    div = np.gradient(unit[0], axis=0) + np.gradient(unit[1], axis=1)
    return np.clip(1.0 + div / SUPPRESS_DIVERGENCE, 0.0, 1.0).astype(np.float32)


def follow_flows(
    field: np.ndarray, ys: np.ndarray, xs: np.ndarray, niter: int, *, device: str = "cpu"
) -> np.ndarray:
    """Move points ``niter`` Euler steps of size 1 along a bilinearly sampled vector field.

    Parameters
    ----------
    field
        ``(2, Y, X)`` step field ``(dy, dx)`` in pixels per step.
    ys, xs
        Start positions (pixel indices).
    niter
        Number of steps.
    device
        ``"cpu"`` for numpy, otherwise a torch device.

    Returns
    -------
    numpy.ndarray
        float32 ``(2, N)`` end positions ``(y, x)``, clipped to the image.
    """
    table = _bilinear_table(field)
    if device == "cpu":
        return _follow_numpy(table, field.shape[1:], ys, xs, niter)
    return _follow_torch(table, field.shape[1:], ys, xs, niter, device)


def _bilinear_table(field: np.ndarray) -> np.ndarray:
    """Per-pixel coefficients of the bilinear interpolant on the cell to its lower right.

    Row ``y * (X + 1) + x`` holds, per channel, ``(a, b, c, d)`` such that the field at
    ``(y + fy, x + fx)`` is ``a + b fx + (c + d fx) fy``; the field is zero-padded by one
    row and column so that points on the last row or column need no special case.
    """
    _, ny, nx = field.shape
    pad = np.zeros((2, ny + 2, nx + 2), dtype=np.float32)
    pad[:, :ny, :nx] = field
    table = np.empty((ny + 1, nx + 1, 8), dtype=np.float32)
    for ch in range(2):
        f00, f01 = pad[ch, :-1, :-1], pad[ch, :-1, 1:]
        f10, f11 = pad[ch, 1:, :-1], pad[ch, 1:, 1:]
        a, b, c, d = (table[..., 4 * ch + k] for k in range(4))
        a[...] = f00
        np.subtract(f01, f00, out=b)
        np.subtract(f10, f00, out=c)
        np.subtract(f11, f10, out=d)
        d -= b
    return table.reshape(-1, 8)


def _follow_numpy(
    table: np.ndarray, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, niter: int
) -> np.ndarray:
    ny, nx = shape
    y = ys.astype(np.float32)
    x = xs.astype(np.float32)
    for _ in range(niter):
        yi = y.astype(np.intp)
        xi = x.astype(np.intp)
        fy = y - yi
        fx = x - xi
        c = np.take(table, yi * (nx + 1) + xi, axis=0)
        y += c[:, 0] + c[:, 1] * fx + (c[:, 2] + c[:, 3] * fx) * fy
        x += c[:, 4] + c[:, 5] * fx + (c[:, 6] + c[:, 7] * fx) * fy
        np.clip(y, 0, ny - 1, out=y)
        np.clip(x, 0, nx - 1, out=x)
    return np.stack([y, x])


def _follow_torch(
    table: np.ndarray,
    shape: tuple[int, int],
    ys: np.ndarray,
    xs: np.ndarray,
    niter: int,
    device: str,
) -> np.ndarray:
    import torch

    ny, nx = shape
    tab = torch.from_numpy(table).to(device)
    y = torch.from_numpy(ys.astype(np.float32)).to(device)
    x = torch.from_numpy(xs.astype(np.float32)).to(device)
    for _ in range(niter):
        yi = y.long()
        xi = x.long()
        fy = y - yi
        fx = x - xi
        c = tab.index_select(0, yi * (nx + 1) + xi)
        y = (y + c[:, 0] + c[:, 1] * fx + (c[:, 2] + c[:, 3] * fx) * fy).clamp_(0, ny - 1)
        x = (x + c[:, 4] + c[:, 5] * fx + (c[:, 6] + c[:, 7] * fx) * fy).clamp_(0, nx - 1)
    return torch.stack([y, x]).cpu().numpy()


def _pair_views(
    shape: tuple[int, int], dy: int, dx: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices ``a`` and ``b`` such that ``arr[b]`` is the ``(dy, dx)`` neighbour of ``arr[a]``."""
    ny, nx = shape
    a = (slice(0, ny - dy), slice(max(0, -dx), nx - max(0, dx)))
    b = (slice(dy, ny), slice(max(0, dx), nx - max(0, -dx)))
    return a, b


def _link_components(
    ys: np.ndarray,
    xs: np.ndarray,
    end: np.ndarray,
    shape: tuple[int, int],
    unit: np.ndarray,
    boundary: np.ndarray | None,
) -> np.ndarray:
    """Connected components of the graph of neighbours whose end points are close."""
    ny, nx = shape
    dtype = np.int32 if ys.size < np.iinfo(np.int32).max else np.int64
    index = np.full((ny + 2, nx + 2), -1, dtype=dtype)  # -1 = background or off-image
    index[ys + 1, xs + 1] = np.arange(ys.size, dtype=dtype)
    edge = None if boundary is None else boundary[ys, xs] > 0.5
    uy, ux = unit[0][ys, xs], unit[1][ys, xs]
    rows, cols = [], []
    for dy, dx in _PAIR_OFFSETS:
        nb = index[ys + 1 + dy, xs + 1 + dx]
        src = np.flatnonzero(nb >= 0)
        dst = nb[src]
        gap2 = (end[0, src] - end[0, dst]) ** 2 + (end[1, src] - end[1, dst]) ** 2
        link = gap2 < LINK_DISTANCE**2
        if edge is not None:
            # both pixels on a predicted boundary and their flows point away from each other
            apart = ((uy[dst] - uy[src]) * dy + (ux[dst] - ux[src]) * dx) / np.hypot(dy, dx)
            link &= ~(edge[src] & edge[dst] & (apart > 0.5))
        rows.append(src[link])
        cols.append(dst[link])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(ys.size,) * 2)
    _, comp = connected_components(graph, directed=False)
    labels = np.zeros(shape, dtype=np.int32)
    labels[ys, xs] = comp + 1
    return labels


def _drop_inconsistent(
    labels: np.ndarray, flow: np.ndarray, ys: np.ndarray, xs: np.ndarray, threshold: float
) -> np.ndarray:
    """Remove masks whose flow differs from the recomputed one by more than ``threshold``.

    The error of a mask is the mean over its pixels of the squared length of
    ``flow / s - target``, with ``target`` the unit flow that
    :func:`~napari_cellseg.targets.omni.omni_targets` computes from the masks and ``s`` the
    median flow length over the foreground pixels ``(ys, xs)`` (so the output scale does not
    matter).
    """
    from napari_cellseg.targets.omni import omni_targets

    target = omni_targets(labels)[:2, ys, xs]
    pred = flow[:, ys, xs]
    scale = float(np.median(np.hypot(pred[0], pred[1])))
    if scale > 1e-6:
        pred = pred / scale
    lab = labels[ys, xs]
    count = np.bincount(lab)
    total = np.bincount(lab, weights=((pred - target) ** 2).sum(axis=0), minlength=count.size)
    bad = total > threshold * count
    bad[0] = False
    if not bad.any():
        return labels
    return np.where(bad[labels], 0, labels).astype(np.int32)


# --------------------------------------------------------------------------- unet, dcan


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
    _check_probability(prob, "prob")
    fg = prob > threshold
    if watershed:
        labels = _distance_watershed(fg, split_depth)
    else:
        labels = ndi.label(fg, _STRUCT8)[0].astype(np.int32)
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
    _check_probability(obj, "obj")
    _check_probability(contour, "contour")
    mask = obj > threshold
    seeds = ndi.label(obj * (1.0 - contour) > threshold)[0]
    labels = watershed(contour, seeds, mask=mask).astype(np.int32)
    labels = _label_unseeded(labels, mask)
    return renumber(remove_small(labels, min_size))


def _check_probability(values: np.ndarray, name: str) -> None:
    if values.size and (float(values.min()) < 0.0 or float(values.max()) > 1.0):
        raise ValueError(f"{name} must hold probabilities in [0, 1]; apply a sigmoid to logits")


def _distance_watershed(fg: np.ndarray, split_depth: float) -> np.ndarray:
    """Split touching blobs: watershed of the distance transform from its h-maxima."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    if not fg.any():
        return np.zeros(fg.shape, dtype=np.int32)
    dist = ndi.distance_transform_edt(fg)
    markers = ndi.label(h_maxima(dist, split_depth), _STRUCT8)[0]
    labels = watershed(-dist, markers, mask=fg).astype(np.int32)
    return _label_unseeded(labels, fg)


def _label_unseeded(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give the components of ``mask`` that the watershed did not reach labels of their own."""
    left = mask & (labels == 0)
    if not left.any():
        return labels
    extra, _ = ndi.label(left, _STRUCT8)
    top = int(labels.max())
    return np.where(left, extra + top, labels).astype(np.int32)


# --------------------------------------------------------------------------- shared cleanup


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to background.

    Parameters
    ----------
    labels
        Non-negative integer labels, 0 = background (memory grows with the largest id).
    min_size
        Smallest object kept (pixels); ``<= 1`` keeps everything.

    Returns
    -------
    numpy.ndarray
        Labels of the same dtype (a new array).
    """
    labels = np.asarray(labels)
    if min_size <= 1 or labels.size == 0:
        return labels.copy()
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels).astype(labels.dtype)


def fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Fill every background region enclosed by a single object with that object's label.

    Background regions are 4-connected (the usual dual of 8-connected objects); a region that
    touches the image edge, or touches two different objects, is not a hole.

    Parameters
    ----------
    labels
        ``(Y, X)`` integer labels, 0 = background.

    Returns
    -------
    numpy.ndarray
        Labels of the same dtype (a new array).
    """
    labels = np.asarray(labels)
    bg = labels == 0
    regions, n = ndi.label(bg)
    if n == 0:
        return labels.copy()
    # (region, neighbouring label) pairs across every 4-neighbour step, as one int64 key
    top = int(labels.max()) + 1
    keys = []
    for dy, dx in ((0, 1), (1, 0)):
        a, b = _pair_views(labels.shape, dy, dx)
        for reg, lab in ((regions[a], labels[b]), (regions[b], labels[a])):
            touch = (reg > 0) & (lab > 0)
            keys.append(reg[touch].astype(np.int64) * top + lab[touch])
    keys = np.unique(np.concatenate(keys))
    region_ids, neighbour = keys // top, keys % top
    count = np.bincount(region_ids, minlength=n + 1)
    fill = np.zeros(n + 1, dtype=labels.dtype)
    single = count[region_ids] == 1
    fill[region_ids[single]] = neighbour[single]
    edge = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    fill[edge] = 0
    return np.where(bg, fill[regions], labels).astype(labels.dtype)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Renumber the objects 1..N in order of their current ids.

    Parameters
    ----------
    labels
        Non-negative integer labels (memory grows with the largest id).

    Returns
    -------
    numpy.ndarray
        ``int32`` labels.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int32)
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    lut = np.zeros(present.size, dtype=np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[labels]
