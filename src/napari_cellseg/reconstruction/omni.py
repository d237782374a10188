"""Omnipose-style reconstruction: flow + distance (+ boundary) outputs to instance labels.

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

Everything but the foreground (a hysteresis threshold) and the final cleanup works on blocks
of :data:`BLOCK` pixels, so that besides the full-size inputs and label image the memory does
not grow with the image: a pixel moves at most one pixel per step, so its end point only
depends on the flow within ``niter + 3`` pixels; the components of each block are joined to
those of its neighbours through the pixels on their common edges; and each mask's flow check
looks only at the mask. The labels are the same whatever the block size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from napari_cellseg.reconstruction.cleanup import (
    STRUCT8,
    check_probability,
    fill_label_holes,
    remove_small,
    renumber,
    without,
)

#: Divergence (1/px) of the unit flow at which suppression stops pixels completely.
SUPPRESS_DIVERGENCE = 0.5
#: Neighbouring pixels whose end points are closer than this (px) belong to one object.
LINK_DISTANCE = 3.0
#: Default number of Euler steps of :func:`omni_masks`.
DEFAULT_NITER = 10
#: Default edge (px) of the blocks :func:`omni_masks` works on one at a time.
BLOCK = 1024

# offsets (dy, dx) that visit every 8-neighbour pair once
_PAIR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


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
    block: int = BLOCK,
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
    block
        Edge in pixels of the square blocks worked on one at a time (see the module notes):
        the working memory grows with the block, not with the image. The labels do not
        depend on it.

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
        check_probability(boundary, "boundary")
    niter = DEFAULT_NITER if niter is None else int(niter)
    if niter < 0:
        raise ValueError(f"niter must be >= 0, got {niter}")
    if block < 1:
        raise ValueError(f"block must be >= 1 pixel, got {block}")

    fg = _hysteresis(dist, mask_threshold - 1.0, mask_threshold)
    if not fg.any():
        return np.zeros(dist.shape, dtype=np.int32)
    labels = _link_blocks(flow, fg, boundary, niter, suppress, device, block)
    del fg
    if flow_threshold > 0:
        labels = _drop_inconsistent(labels, flow, flow_threshold, block)
    labels = remove_small(labels, min_size)
    if fill_holes:
        labels = fill_label_holes(labels)
    return renumber(labels)


def _hysteresis(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values > low`` pixels 8-connected to a ``values > high`` pixel."""
    weak = values > low
    comp, n = ndi.label(weak, STRUCT8)
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


def _blocks(shape: tuple[int, int], block: int) -> Iterator[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the blocks tiling an image, row by row."""
    ny, nx = shape
    for y0 in range(0, ny, block):
        for x0 in range(0, nx, block):
            yield y0, min(y0 + block, ny), x0, min(x0 + block, nx)


def _link_blocks(
    flow: np.ndarray,
    fg: np.ndarray,
    boundary: np.ndarray | None,
    niter: int,
    suppress: bool,
    device: str,
    block: int,
) -> np.ndarray:
    """Objects of the foreground: linked neighbours, found block by block (:func:`link_block`).

    The block's components are numbered after those of the blocks before it; a rim pixel
    belongs to a neighbouring block, and its two numbers are joined at the end
    (:func:`join_ids`).
    """
    ny, nx = fg.shape
    labels = np.zeros((ny, nx), dtype=np.int32)
    rim_pixels, rim_ids = [], []
    top = 0
    for bounds in _blocks((ny, nx), block):
        win = link_window(bounds, (ny, nx), niter)
        n, gy, gx, comp, core = link_block(
            flow[:, win[0], win[1]],
            fg[win],
            None if boundary is None else boundary[win],
            bounds,
            (win[0].start, win[1].start),
            niter,
            suppress,
            device,
        )
        comp += top
        labels[gy[core], gx[core]] = comp[core]
        rim_pixels.append(gy[~core] * nx + gx[~core])
        rim_ids.append(comp[~core])
        top += n
    # a rim pixel's id in its own block and in the block that followed it as a rim
    own = labels.ravel()[np.concatenate(rim_pixels)]
    return join_ids(own, np.concatenate(rim_ids), top)[labels]


def join_ids(own: np.ndarray, other: np.ndarray, top: int) -> np.ndarray:
    """The lookup table that gives ids ``1..top`` joined in pairs one number per group.

    Parameters
    ----------
    own, other
        Pairs of ids (``1..top``) of one object, e.g. a rim pixel's id in its own block and in
        the block that followed it as a rim.
    top
        The largest id.

    Returns
    -------
    numpy.ndarray
        ``int32`` table of ``top + 1`` entries: 0 for 0, else the group's number ``1..G``, in
        order of each group's smallest id.
    """
    graph = sparse.coo_matrix(
        (np.ones(own.size, dtype=np.int8), (own - 1, other - 1)), shape=(top, top)
    )
    _, comp = connected_components(graph, directed=False)
    return np.concatenate([[0], comp + 1]).astype(np.int32)


def link_window(
    bounds: tuple[int, int, int, int], shape: tuple[int, int], niter: int
) -> tuple[slice, slice]:
    """The window of the flow :func:`link_block` needs for the block ``(y0, y1, x0, x1)``.

    The block plus its rim (the row below, the columns left and right), ``niter + 3`` pixels
    wider on every side (clipped to the image of ``shape``).
    """
    (y0, y1, x0, x1), (ny, nx) = bounds, shape
    margin = niter + 3
    ey1, ex0, ex1 = min(y1 + 1, ny), max(x0 - 1, 0), min(x1 + 1, nx)
    return (
        slice(max(y0 - margin, 0), min(ey1 + margin, ny)),
        slice(max(ex0 - margin, 0), min(ex1 + margin, nx)),
    )


def link_block(
    flow_win: np.ndarray,
    fg_win: np.ndarray,
    boundary_win: np.ndarray | None,
    bounds: tuple[int, int, int, int],
    origin: tuple[int, int],
    niter: int,
    suppress: bool,
    device: str,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linked components of one block's foreground and of its rim.

    The block's pixels plus a one-pixel rim below and beside it follow their flows in the
    :func:`link_window` (a pixel moves at most one pixel per step, and the bilinear samples and
    the divergence reach two further), so every end point, and so every link between
    8-neighbours, is the one the whole image would give.

    Parameters
    ----------
    flow_win, fg_win, boundary_win
        The flow ``(2, h, w)``, foreground and boundary probability (or None) on the window.
    bounds
        ``(y0, y1, x0, x1)`` of the block in the image.
    origin
        Image position of the window's first pixel.
    niter, suppress, device
        As :func:`omni_masks`.

    Returns
    -------
    n, gy, gx, comp, core
        The number of components, the image positions of the block's and rim's foreground
        pixels, their component (``1..n``) and whether each lies in the block (else the rim).
    """
    (y0, y1, x0, x1), (wy0, wx0) = bounds, origin
    ny, nx = wy0 + fg_win.shape[0], wx0 + fg_win.shape[1]  # at least to the rim
    ey1, ex0, ex1 = min(y1 + 1, ny), max(x0 - 1, 0), min(x1 + 1, nx)
    ys, xs = np.nonzero(fg_win[y0 - wy0 : ey1 - wy0, ex0 - wx0 : ex1 - wx0])
    if ys.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return 0, empty, empty, empty.astype(np.int32), empty.astype(bool)
    ys += y0 - wy0
    xs += ex0 - wx0
    unit = _unit_flow(flow_win, fg_win)
    field = unit * _suppression(unit) if suppress else unit
    end = follow_flows(field, ys, xs, niter, device=device, origin=(wy0, wx0))
    n, comp = _link_components(ys, xs, end, unit, boundary_win)
    gy, gx = ys + wy0, xs + wx0
    core = (gy < y1) & (gx >= x0) & (gx < x1)
    return n, gy, gx, (comp + 1).astype(np.int32), core


def follow_flows(
    field: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    niter: int,
    *,
    device: str = "cpu",
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Move points ``niter`` Euler steps of size 1 along a bilinearly sampled vector field.

    Parameters
    ----------
    field
        ``(2, H, W)`` step field ``(dy, dx)`` in pixels per step.
    ys, xs
        Start positions: pixel indices into ``field``.
    niter
        Number of steps.
    device
        ``"cpu"`` for numpy, otherwise a torch device.
    origin
        Position of ``field[:, 0, 0]`` in the image of which ``field`` is a window: the end
        positions are in the image's coordinates, and points stay inside the window.

    Returns
    -------
    numpy.ndarray
        float32 ``(2, N)`` end positions ``(y, x)``.
    """
    table = _bilinear_table(field)
    y = (ys + origin[0]).astype(np.float32)
    x = (xs + origin[1]).astype(np.float32)
    if device == "cpu":
        return _follow_numpy(table, field.shape[1:], origin, y, x, niter)
    return _follow_torch(table, field.shape[1:], origin, y, x, niter, device)


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
    table: np.ndarray,
    size: tuple[int, int],
    origin: tuple[int, int],
    y: np.ndarray,
    x: np.ndarray,
    niter: int,
) -> np.ndarray:
    """Integrate image positions ``y, x`` (float32, updated in place) in a window's table."""
    (oy, ox), (h, w) = origin, size
    for _ in range(niter):
        yi = y.astype(np.intp)
        xi = x.astype(np.intp)
        fy = y - yi
        fx = x - xi
        c = np.take(table, (yi - oy) * (w + 1) + (xi - ox), axis=0)
        y += c[:, 0] + c[:, 1] * fx + (c[:, 2] + c[:, 3] * fx) * fy
        x += c[:, 4] + c[:, 5] * fx + (c[:, 6] + c[:, 7] * fx) * fy
        np.clip(y, oy, oy + h - 1, out=y)
        np.clip(x, ox, ox + w - 1, out=x)
    return np.stack([y, x])


def _follow_torch(
    table: np.ndarray,
    size: tuple[int, int],
    origin: tuple[int, int],
    y: np.ndarray,
    x: np.ndarray,
    niter: int,
    device: str,
) -> np.ndarray:
    """:func:`_follow_numpy` with torch on ``device``."""
    import torch

    (oy, ox), (h, w) = origin, size
    tab = torch.from_numpy(table).to(device)
    ty = torch.from_numpy(y).to(device)
    tx = torch.from_numpy(x).to(device)
    for _ in range(niter):
        yi = ty.long()
        xi = tx.long()
        fy = ty - yi
        fx = tx - xi
        c = tab.index_select(0, (yi - oy) * (w + 1) + (xi - ox))
        ty = (ty + c[:, 0] + c[:, 1] * fx + (c[:, 2] + c[:, 3] * fx) * fy).clamp_(oy, oy + h - 1)
        tx = (tx + c[:, 4] + c[:, 5] * fx + (c[:, 6] + c[:, 7] * fx) * fy).clamp_(ox, ox + w - 1)
    return torch.stack([ty, tx]).cpu().numpy()


def _link_components(
    ys: np.ndarray,
    xs: np.ndarray,
    end: np.ndarray,
    unit: np.ndarray,
    boundary: np.ndarray | None,
) -> tuple[int, np.ndarray]:
    """Connected components of the graph of neighbours whose end points are close.

    ``ys, xs`` index the window of ``unit`` (``(2, H, W)``) and ``boundary``; returns the
    number of components and the component (0..n-1) of each pixel.
    """
    ny, nx = unit.shape[1:]
    index = np.full((ny + 2, nx + 2), -1, dtype=np.int32)  # -1 = background or off-window
    index[ys + 1, xs + 1] = np.arange(ys.size, dtype=np.int32)
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
    return connected_components(graph, directed=False)


def _drop_inconsistent(
    labels: np.ndarray, flow: np.ndarray, threshold: float, block: int
) -> np.ndarray:
    """Remove masks whose flow differs from the recomputed one by more than ``threshold``.

    The error of a mask is the mean over its pixels of the squared length of
    ``flow / s - target``, with ``target`` the unit flow that
    :func:`~napari_cellseg.targets.omni.omni_targets` computes from the masks and ``s`` the
    median flow length over the foreground (so the output scale does not matter). Each mask
    is checked with the others whose bounding box starts in the same ``block``, on the union
    of their boxes plus a one-pixel rim (:func:`inconsistent_masks`).
    """
    ny, nx = labels.shape
    lengths = []
    for y0, y1, x0, x1 in _blocks((ny, nx), block):
        inside = labels[y0:y1, x0:x1] > 0
        lengths.append(np.hypot(flow[0, y0:y1, x0:x1][inside], flow[1, y0:y1, x0:x1][inside]))
    inv = flow_scale_inverse(float(np.median(np.concatenate(lengths))))

    boxes = ndi.find_objects(labels)
    n = len(boxes)
    found = np.array([b is not None for b in boxes], dtype=bool)
    corner = np.array([(b[0].start, b[1].start) if b else (0, 0) for b in boxes]).reshape(-1, 2)
    group = np.where(found, corner[:, 0] // block * -(-nx // block) + corner[:, 1] // block, -1)
    bad = np.zeros(n + 1, dtype=bool)
    for g in np.unique(group[group >= 0]):
        ids = np.flatnonzero(group == g) + 1
        y0 = max(min(boxes[i - 1][0].start for i in ids) - 1, 0)
        y1 = min(max(boxes[i - 1][0].stop for i in ids) + 1, ny)
        x0 = max(min(boxes[i - 1][1].start for i in ids) - 1, 0)
        x1 = min(max(boxes[i - 1][1].stop for i in ids) + 1, nx)
        lab = labels[y0:y1, x0:x1]
        bad[ids] = inconsistent_masks(lab, flow[:, y0:y1, x0:x1], ids, inv, threshold)
    return without(labels, bad) if bad.any() else labels


def flow_scale_inverse(median_length: float) -> np.float32:
    """``1 / s`` for the median flow length ``s`` over the foreground (1 for a vanishing ``s``)."""
    return np.float32(1.0 / median_length if median_length > 1e-6 else 1.0)


def inconsistent_masks(
    lab: np.ndarray, flow: np.ndarray, ids: np.ndarray, inv: np.float32, threshold: float
) -> np.ndarray:
    """Which masks ``ids`` of a crop fail the flow check of :func:`_drop_inconsistent`.

    Parameters
    ----------
    lab, flow
        Labels ``(h, w)`` and flow ``(2, h, w)`` of a crop that holds the masks ``ids`` whole,
        with a one-pixel rim (or the image edge) around them.
    ids
        The masks to check.
    inv
        :func:`flow_scale_inverse` of the image.
    threshold
        The largest mean squared error kept.

    Returns
    -------
    numpy.ndarray
        One bool per id: its error is above ``threshold``.
    """
    from napari_cellseg.targets.omni import omni_targets

    top = int(lab.max()) + 1
    mine = np.zeros(max(top, int(ids.max()) + 1), dtype=bool)
    mine[ids] = True
    sel = mine[lab]
    target = omni_targets(lab)[:2, sel]
    err = ((flow[:, sel] * inv - target) ** 2).sum(axis=0)
    total = np.bincount(lab[sel], weights=err, minlength=mine.size)
    count = np.bincount(lab[sel], minlength=mine.size)
    return total[ids] > threshold * count[ids]
