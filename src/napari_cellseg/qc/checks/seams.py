"""Thin background seams between pairs of cells: the pixels of the ``gap`` check and its fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellseg.qc.checks.analysis import Analysis

_MIN_SEAM_LENGTH = 3
_SEAM_MAX_COSINE = -0.75  # the two labels make an angle of at least ~140 degrees at the pixel
_SEAM_SLACK = 0.5  # px of extra span allowed for slanted seams


@dataclass(frozen=True)
class Seams:
    """Background pixels in thin seams between cells, grouped by pair of cells.

    Parameters
    ----------
    index : numpy.ndarray
        Flat image indices of the seam pixels of the reported pairs.
    nearest : numpy.ndarray
        Dense id of the nearest label of each of those pixels (what the fix paints).
    pairs : numpy.ndarray
        ``(k, 2)`` dense ids ``a < b`` of each reported pair.
    pixels : numpy.ndarray
        ``(k,)`` seam pixels per pair.
    length : numpy.ndarray
        ``(k,)`` seam length: its pixels beside the longer of the pair's two cells.
    contact : numpy.ndarray
        ``(k,)`` pixel edges where the pair already touches.
    bbox : numpy.ndarray
        ``(k, 4)`` half-open box of each pair's seam.
    """

    index: np.ndarray
    nearest: np.ndarray
    pairs: np.ndarray
    pixels: np.ndarray
    length: np.ndarray
    contact: np.ndarray
    bbox: np.ndarray


def find_seams(an: Analysis) -> Seams:
    """Find the seams of the reported pairs of cells (``an.max_gap`` wide at most)."""
    r = an.max_gap
    empty = np.zeros(0, dtype=np.int64)
    if r < 1 or an.n < 2:
        return Seams(empty, empty, empty.reshape(0, 2), empty, empty, empty, empty.reshape(0, 4))
    index, nearest, side_a, side_b = _close_seams(an.dense, *_seam_pixels(an.dense, an.n, r))
    a, b = np.minimum(side_a, side_b), np.maximum(side_a, side_b)
    keys, inverse, pixels = np.unique(a * (an.n + 1) + b, return_inverse=True, return_counts=True)
    contact = _contacts(an.dense, an.n, keys)
    # seam length: seam pixels beside (4-neighbour) the longer of its two sides
    beside_a, beside_b = _beside(an.dense, index, a), _beside(an.dense, index, b)
    length = np.maximum(
        np.bincount(inverse, weights=beside_a, minlength=len(keys)),
        np.bincount(inverse, weights=beside_b, minlength=len(keys)),
    ).astype(np.int64)
    pa, pb = keys // (an.n + 1), keys % (an.n + 1)
    keep = (
        (length >= _MIN_SEAM_LENGTH)
        & (length > 2 * contact)
        & (an.sizes[pa] >= an.min_size)
        & (an.sizes[pb] >= an.min_size)
    )
    if an.blob:
        keep &= (pa != an.blob) & (pb != an.blob)
    on = keep[inverse]
    index, nearest, group = index[on], nearest[on], np.cumsum(keep)[inverse[on]] - 1
    y, x = np.divmod(index, an.shape[1])
    k = int(keep.sum())
    bbox = np.zeros((k, 4), dtype=np.int64)
    bbox[:, :2] = np.iinfo(np.int64).max
    np.minimum.at(bbox[:, 0], group, y)
    np.minimum.at(bbox[:, 1], group, x)
    np.maximum.at(bbox[:, 2], group, y + 1)
    np.maximum.at(bbox[:, 3], group, x + 1)
    return Seams(
        index=index,
        nearest=nearest,
        pairs=np.stack([pa[keep], pb[keep]], axis=1),
        pixels=pixels[keep],
        length=length[keep],
        contact=contact[keep],
        bbox=bbox,
    )


def _beside(dense: np.ndarray, index: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Return whether each pixel (flat index) has a 4-neighbour with the given label."""
    height, width = dense.shape
    y, x = np.divmod(index, width)
    flat = dense.ravel()
    found = np.zeros(len(index), dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        inside = (y + dy >= 0) & (y + dy < height) & (x + dx >= 0) & (x + dx < width)
        q = np.where(inside, index + dy * width + dx, 0)
        found |= inside & (flat[q] == label)
    return found


def _seam_pixels(
    dense: np.ndarray, n: int, r: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Background pixels between two different labels at most ``r + 1`` px apart.

    A pixel is in a seam when two different labels lie on opposite sides of it (the angle
    they make at the pixel is at least about 140 degrees) and their pixels are at most ``r + 1`` px
    apart (``r`` background pixels between them, with some slack for slanted seams). Returns
    the flat indices, the nearest label of each pixel (what a fix paints) and the two labels
    of the narrowest such pair (dense ids).
    """
    dtype = np.uint16 if n < np.iinfo(np.uint16).max else np.uint32
    lab = dense.astype(dtype)
    background = lab == 0
    # candidates: background pixels with two different labels within the (2r+1)^2 square,
    # i.e. where the largest label nearby differs from the smallest (via n + 1 - label)
    highest = _max_filter(lab, r)
    inverted = (n + 1) - lab
    inverted[background] = 0
    near_lowest = _max_filter(inverted, r)
    unique = near_lowest == (n + 1) - highest
    candidates = np.flatnonzero(background & (highest > 0) & ~unique)
    # the labels at every offset of the disk around each candidate, nearest first
    offsets = np.array(
        [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy or dx], dtype=float
    )
    dist = np.hypot(offsets[:, 0], offsets[:, 1])
    inside = np.argsort(dist, kind="stable")
    inside = inside[dist[inside] <= r + 0.5]
    offsets, dist = offsets[inside], dist[inside]
    width = dense.shape[1] + 2 * r
    y, x = np.divmod(candidates, dense.shape[1])
    shifts = (offsets[:, 0] * width + offsets[:, 1]).astype(np.int64)
    around = np.pad(lab, r).ravel()[((y + r) * width + (x + r))[None, :] + shifts[:, None]]
    cols = np.arange(len(candidates))
    nearest = around[(around > 0).argmax(axis=0), cols].astype(np.int64)
    # pairs of offsets on opposite sides, at most r + 1 (+ slack) apart, narrowest first
    i, j = np.triu_indices(len(offsets), k=1)
    span = np.hypot(*(offsets[i] - offsets[j]).T)
    cosine = (offsets[i] * offsets[j]).sum(axis=1) / (dist[i] * dist[j])
    ok = np.flatnonzero((cosine <= _SEAM_MAX_COSINE) & (span <= r + 1 + _SEAM_SLACK))
    ok = ok[np.argsort(span[ok], kind="stable")]
    side_a, side_b = around[i[ok]], around[j[ok]]  # (pairs, candidates)
    valid = (side_a > 0) & (side_b > 0) & (side_a != side_b)
    first = valid.argmax(axis=0)
    seam = valid[first, cols]
    side_a, side_b = side_a[first, cols], side_b[first, cols]
    return (
        candidates[seam],
        nearest[seam],
        side_a[seam].astype(np.int64),
        side_b[seam].astype(np.int64),
    )


def _close_seams(
    dense: np.ndarray,
    index: np.ndarray,
    nearest: np.ndarray,
    side_a: np.ndarray,
    side_b: np.ndarray,
    rounds: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add the background pixels that seam or label pixels enclose on two opposite sides.

    On slanted seams the pixel test of :func:`_seam_pixels` leaves single holes; a background
    pixel next to a seam pixel, with a label or seam pixel on both sides of it (left/right,
    up/down or along a diagonal), belongs to the seam too. It takes the pair and the nearest
    label of a neighbouring seam pixel.
    """
    width = dense.shape[1]
    # padded by 2 so that neighbours of neighbours never leave the array; the padding is free
    # space, so a pixel at the image edge is never enclosed across the edge
    w = width + 4
    occupied = np.pad(dense > 0, 2).ravel()
    y, x = np.divmod(index, width)
    pos = (y + 2) * w + (x + 2)
    occupied[pos] = True
    steps = np.array([-w, w, -1, 1, -w - 1, w + 1, -w + 1, w - 1])  # opposite steps in pairs
    source = np.arange(len(pos))
    for _ in range(rounds):
        cand = (pos[source][None, :] + steps[:, None]).ravel()
        owner = np.tile(source, len(steps))
        free = ~occupied[cand]
        cand, owner = cand[free], owner[free]
        enclosed = np.zeros(len(cand), dtype=bool)
        for step in steps[::2]:
            enclosed |= occupied[cand - step] & occupied[cand + step]
        cand, first = np.unique(cand[enclosed], return_index=True)
        if not len(cand):
            break
        owner = owner[enclosed][first]
        occupied[cand] = True
        source = np.arange(len(pos), len(pos) + len(cand))
        pos = np.concatenate([pos, cand])
        nearest = np.concatenate([nearest, nearest[owner]])
        side_a = np.concatenate([side_a, side_a[owner]])
        side_b = np.concatenate([side_b, side_b[owner]])
    y, x = np.divmod(pos, w)
    return (y - 2) * width + (x - 2), nearest, side_a, side_b


def _max_filter(img: np.ndarray, r: int) -> np.ndarray:
    """Maximum over the ``(2r+1)^2`` square around each pixel (zero outside the image)."""
    out = img
    for axis in (0, 1):
        src, out = out, out.copy()
        length = src.shape[axis]
        for s in range(1, min(r, length - 1) + 1):
            head = [slice(None)] * 2
            tail = [slice(None)] * 2
            head[axis], tail[axis] = slice(s, None), slice(None, length - s)
            np.maximum(out[tuple(head)], src[tuple(tail)], out=out[tuple(head)])
            np.maximum(out[tuple(tail)], src[tuple(head)], out=out[tuple(tail)])
    return out


def _contacts(dense: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """Count the 4-neighbour pixel edges between the two labels of each pair key."""
    found = []
    for a, b in ((dense[:, :-1], dense[:, 1:]), (dense[:-1, :], dense[1:, :])):
        touch = (a != b) & (a > 0) & (b > 0)
        lo, hi = a[touch].astype(np.int64), b[touch].astype(np.int64)
        found.append(np.minimum(lo, hi) * (n + 1) + np.maximum(lo, hi))
    edges = np.sort(np.concatenate(found))
    return np.searchsorted(edges, keys, side="right") - np.searchsorted(edges, keys)
