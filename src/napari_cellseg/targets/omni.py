"""Omnipose-style training targets: distance, flow, boundary and weight fields.

Pure numpy/scipy (no torch): these run per training crop inside data-loader workers.

Conventions
-----------
``omni_targets`` returns a float32 ``(5, Y, X)`` array whose channels are ``OMNI_CHANNELS``:

``flow_y, flow_x``
    Unit vectors (norm 1 inside objects, 0 in background) along the gradient of the distance
    field, i.e. pointing toward the object's skeleton and, along the skeleton, toward its
    centre. The network predicts ``FLOW_SCALE * flow`` (Omnipose's ×5, the scale of a boundary
    logit); ``napari_cellseg.losses.omni_loss`` applies the factor to this target.
``dist``
    Euclidean distance in pixels from the pixel to the object's boundary, ``>= 1`` inside
    (1 on boundary pixels, about the radius at the centre of a disc), ``DIST_BG`` in the
    background. The network predicts it as-is, in pixels.
``boundary``
    1 on foreground pixels that are not connected to all 8 neighbours (a neighbour in the
    background or in another object), so interfaces between touching objects are 2 px thick.
``weight``
    ``(1 + foreground) / 2``: 1 inside objects, 0.5 in background.

Connectivity follows Omnipose's affinity graph: two neighbouring pixels are connected when
they carry the same label, when their labels are linked (``*_links.txt``: linked ids are
merged into one object first), or, with ``edge_aware``, when the neighbour lies outside the
crop, so objects cut by the crop or the image edge get neither a boundary nor a distance
minimum there: their distance keeps increasing toward the edge, as if the object went on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

OMNI_CHANNELS = ("flow_y", "flow_x", "dist", "boundary", "weight")
DIST_BG = -5.0
FLOW_SCALE = 5.0
#: The network's raw outputs are O(1): ``raw[:2] = flow`` (unit vectors) and
#: ``raw[2] = dist / DIST_SCALE``; losses work on ``FLOW_SCALE * raw[:2]`` and
#: ``DIST_SCALE * raw[2]``. Keeping raw outputs small lets the optimiser reach the -5
#: background distance in tens of steps instead of thousands.
DIST_SCALE = 5.0

# the 8 neighbour offsets (dy, dx)
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
# least-squares gradient weights o / |o|^2 for each offset
_GRAD_Y = np.array([dy / (dy * dy + dx * dx) for dy, dx in _OFFSETS], dtype=np.float32)
_GRAD_X = np.array([dx / (dy * dy + dx * dx) for dy, dx in _OFFSETS], dtype=np.float32)
# largest label value for which linked ids are merged with a lookup table
_MAX_LUT = 1 << 22


def label_image(labels: np.ndarray) -> np.ndarray:
    """Return a 2D label matrix as a signed integer array (0 = background).

    Parameters
    ----------
    labels : numpy.ndarray
        2D array of non-negative integer labels. Boolean masks and floating-point arrays
        holding whole numbers (e.g. after a nearest-neighbour warp) are accepted.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels, or ``int64`` when the largest label does not fit in ``int32``.

    Raises
    ------
    ValueError
        If the array is not 2D or holds negative or fractional values.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be a 2D (Y, X) array, got shape {lab.shape}")
    if lab.dtype.kind == "f" and not np.array_equal(lab, np.round(lab)):
        raise ValueError("labels must hold whole numbers, got fractional values")
    if lab.size and lab.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background)")
    dtype = np.int32 if lab.size == 0 or lab.max() < np.iinfo(np.int32).max else np.int64
    return lab.astype(dtype, copy=False)


def merge_linked_labels(labels: np.ndarray, links: Iterable[tuple[int, int]] | None) -> np.ndarray:
    """Give every group of linked labels one id (the smallest of the group).

    Parameters
    ----------
    labels : numpy.ndarray
        2D integer label matrix.
    links : iterable of (int, int) or None
        Pairs of label ids that are pieces of one object; groups are the connected components
        of the link graph (union-find). Ids absent from ``labels`` are harmless.

    Returns
    -------
    numpy.ndarray
        The relabelled matrix (``labels`` itself when there are no links).
    """
    lab = label_image(labels)
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        root = a
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[a] != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    for a, b in links or ():
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    moved = {i: find(i) for i in parent if find(i) != i}
    if not moved or lab.size == 0:
        return lab
    top = int(lab.max())
    if top < _MAX_LUT:
        lut = np.arange(top + 1, dtype=lab.dtype)
        for i, root in moved.items():
            if i <= top:
                lut[i] = root
        return lut[lab]
    ids, inverse = np.unique(lab, return_inverse=True)
    mapped = np.array([moved.get(int(i), int(i)) for i in ids], dtype=lab.dtype)
    return mapped[inverse].reshape(lab.shape)


def edt(inside: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from each pixel to the nearest ``False`` pixel.

    Pixels outside the array do not count as ``False`` (the object may go on beyond the
    edge). Separable algorithm: exact distances ``g`` along rows (log-step prefix scans of the
    nearest ``False`` column on each side), then ``min_k (k**2 + g(y + k)**2)`` along
    columns, stopping as soon as no distance can shrink; on label images of cells this is
    faster than ``scipy.ndimage.distance_transform_edt``.

    Parameters
    ----------
    inside : numpy.ndarray
        2D boolean array.

    Returns
    -------
    numpy.ndarray
        float32 distances (0 on ``False`` pixels); ``inf`` everywhere when there is no
        ``False`` pixel at all.
    """
    inside = np.asarray(inside, dtype=bool)
    ny, nx = inside.shape
    if inside.all():
        return np.full(inside.shape, np.inf, dtype=np.float32)
    far = np.float32(4 * (ny + nx))
    cols = np.arange(nx, dtype=np.float32)
    outside = ~inside
    # column of the nearest False pixel to the left / right (-far / 2 * far: none)
    left = outside * (cols + far) - far
    right = outside * (cols - 2 * far) + 2 * far
    step = 1
    while step < nx:
        np.maximum(left[:, step:], left[:, :-step], out=left[:, step:])
        np.minimum(right[:, :-step], right[:, step:], out=right[:, :-step])
        step *= 2
    g = np.minimum(cols - left, right - cols)
    g2 = g * g
    d2 = g2.copy()
    shifted = np.empty_like(g2)
    for k in range(1, ny):
        kk = np.float32(k * k)
        if kk >= d2.max():
            break
        np.add(g2[:-k], kk, out=shifted[:-k])
        np.minimum(d2[k:], shifted[:-k], out=d2[k:])
        np.add(g2[k:], kk, out=shifted[:-k])
        np.minimum(d2[:-k], shifted[:-k], out=d2[:-k])
    return np.sqrt(d2)


def _neighbours(a: np.ndarray) -> np.ndarray:
    """``(8, Y, X)`` stack of ``a`` shifted to each of the 8 neighbour offsets (0 outside)."""
    ny, nx = a.shape
    padded = np.pad(a, 1)
    return np.stack([padded[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx] for dy, dx in _OFFSETS])


def _connections(lab: np.ndarray, edge_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boundary mask and in-image same-label neighbour indicators.

    Returns
    -------
    boundary : numpy.ndarray
        ``(Y, X)`` bool, foreground pixels with fewer than 8 connections.
    same : numpy.ndarray
        ``(8, Y, X)`` float32, 1 where neighbour ``k`` lies inside the image and has the
        pixel's label (meaningful on foreground pixels only).
    """
    # 'edge' padding repeats the edge pixels, so an off-image neighbour is connected exactly
    # when Omnipose's is_edge rule says so; constant 0 padding makes it background instead
    ny, nx = lab.shape
    padded = np.pad(lab, 1, mode="edge" if edge_aware else "constant")
    same = np.empty((len(_OFFSETS), ny, nx), dtype=np.float32)
    for k, (dy, dx) in enumerate(_OFFSETS):
        view = padded[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]
        np.equal(view, lab, out=same[k], casting="unsafe")
    boundary = (lab > 0) & (same.sum(axis=0) < len(_OFFSETS))
    # off-image neighbours carry no data for smoothing and gradients
    for k, (dy, dx) in enumerate(_OFFSETS):
        if dy:
            same[k, 0 if dy < 0 else -1, :] = 0.0
        if dx:
            same[k, :, 0 if dx < 0 else -1] = 0.0
    return boundary, same


def omni_targets(
    labels: np.ndarray,
    links: Iterable[tuple[int, int]] | None = None,
    *,
    edge_aware: bool = True,
) -> np.ndarray:
    """Compute Omnipose-style flow, distance, boundary and weight targets for one crop.

    Parameters
    ----------
    labels : numpy.ndarray
        2D label matrix ``(Y, X)``, 0 = background.
    links : iterable of (int, int), optional
        Linked label pairs (pieces of one object): they are merged before anything else, so
        their interface has no boundary and no distance minimum.
    edge_aware : bool, default True
        Treat neighbours outside the array as connected (objects cut by the crop or the image
        edge continue beyond it). With ``False`` the outside counts as background: edge
        pixels of objects become boundary and the distance drops to 1 there.

    Returns
    -------
    numpy.ndarray
        float32 ``(5, Y, X)`` in ``OMNI_CHANNELS`` order: unit flow (y, x), distance
        (pixels, ``DIST_BG`` in background), boundary (0/1), weight (1 inside, 0.5 outside).

    Notes
    -----
    Distance: the exact Euclidean distance transform of the object interiors (foreground
    pixels that are not boundary), plus 1, so boundary pixels are at 1 and a disc of radius
    ``r`` peaks at about ``r``. Flow: the distance is smoothed by one 3×3 mean restricted to
    the pixel's object, then differentiated by least squares over the same-object
    8-neighbourhood, ``sum_k (s_k - s) * o_k / |o_k|**2``, and normalised to unit length. A
    crop lying entirely inside one object (no distance reference) gets a constant distance
    and no flow.
    """
    lab = merge_linked_labels(labels, links)
    ny, nx = lab.shape
    out = np.zeros((len(OMNI_CHANNELS), ny, nx), dtype=np.float32)
    fg = lab > 0
    out[4] = 0.5
    out[4][fg] = 1.0
    if not fg.any():
        out[2] = DIST_BG
        return out
    boundary, same = _connections(lab, edge_aware)
    out[3] = boundary

    dist = (np.minimum(edt(fg & ~boundary), np.float32(max(ny, nx))) + np.float32(1.0)) * fg
    # flows follow a 3x3 same-object mean of the distance (no flat spots, less quantisation)
    smooth = (dist + np.einsum("kyx,kyx->yx", same, _neighbours(dist))) / (1.0 + same.sum(0))
    # sum_k same_k * (s_k - s) * o_k / |o_k|^2
    weighted = same * (_neighbours(smooth) - smooth)
    gy = _GRAD_Y @ weighted.reshape(len(_OFFSETS), -1)
    gx = _GRAD_X @ weighted.reshape(len(_OFFSETS), -1)
    norm = np.sqrt(gy * gy + gx * gx)
    moving = fg.ravel() & (norm > 1e-6)
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=moving)
    out[0] = (gy * scale).reshape(ny, nx)
    out[1] = (gx * scale).reshape(ny, nx)
    out[2] = np.where(fg, dist, np.float32(DIST_BG))
    return out


def omni_targets_batch(
    labels_batch: np.ndarray | Sequence[np.ndarray],
    links_list: Sequence[Iterable[tuple[int, int]] | None] | None = None,
    **kwargs: bool,
) -> np.ndarray:
    """Stack :func:`omni_targets` over a batch of crops.

    Parameters
    ----------
    labels_batch : numpy.ndarray or sequence of numpy.ndarray
        ``(B, Y, X)`` label matrices (crops of one size).
    links_list : sequence, optional
        One links set (or ``None``) per crop.
    **kwargs
        Passed to :func:`omni_targets` (``edge_aware``).

    Returns
    -------
    numpy.ndarray
        float32 ``(B, 5, Y, X)``.
    """
    if links_list is None:
        links_list = [None] * len(labels_batch)
    if len(links_list) != len(labels_batch):
        raise ValueError(
            f"got {len(links_list)} links sets for a batch of {len(labels_batch)} crops"
        )
    return np.stack(
        [omni_targets(lab, links, **kwargs) for lab, links in zip(labels_batch, links_list)]
    )
