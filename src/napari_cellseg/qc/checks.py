"""Annotation checks on one label matrix: :func:`run_qc`.

Everything is vectorised over the whole image (connected parts with
:func:`skimage.measure.label`, one :func:`scipy.ndimage.find_objects`, lookup tables indexed by
label id), so a 2048x2048 matrix with thousands of cells is checked in well under a second.
Labels are first renumbered to dense ids ``1..n`` (:class:`Analysis`), which keeps every
per-label table small even when the ids themselves are huge.

Definitions
-----------
part
    An 8-connected set of pixels with the same id (Omnipose also connects diagonal pixels).
object
    A label id, or a group of ids joined through the links file (Omnipose ``_links.txt``).
semantic mask
    Few ids covering many separate objects: at least 3 parts of cell size (``>= min_size``
    px) and on average at least 3 of them per id, as a binary or class mask has. A single cell
    labelled 1 is a label matrix, not a semantic mask.
split label
    An object in two or more parts of cell size, at least one of them away from the image
    border (parts that all touch the border are one cell joined outside the image). A part
    smaller than ``min_size`` is a fragment instead.
fragment
    A part smaller than ``min_size`` px, unless it belongs to a cell cut by the image border
    (all of whose parts touch the border).
CLB blobs
    CLB marks regions its annotators could not resolve ("blobs") with label 1. Label 1 is taken
    as blobs when ``blobs=True``, or, with ``blobs=None``, when it is the only id in two or more
    parts of cell size and at least two other ids exist. Blobs are left out of the object
    checks.
gap
    Background pixels between two different labels that lie on opposite sides of them (an
    angle of at least ~140 degrees at the pixel) and at most ``max_gap + 1`` px apart, i.e.
    at most ``max_gap`` background pixels between them (with 0.5 px of slack for slanted
    seams); holes such a seam leaves on slanted edges are closed. Notches beside a real
    interface are not gaps: a pair of cells is reported only when its seam is at least 3 px
    long and more than twice as long as the border along which the two cells already touch,
    and both cells have at least ``min_size`` pixels. Growing cells into a seam can expose a
    short seam at its wider end, so a second QC run after a fix may still list a few.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage import measure

from napari_cellseg.qc.report import SEVERITY, Problem, QCReport

#: Default smallest part, in pixels, that counts as a cell (Cellpose/Omnipose ``min_size``).
DEFAULT_MIN_SIZE = 15
#: Default widest background seam, in pixels, between two cells that counts as a gap.
DEFAULT_MAX_GAP = 2
#: Largest label id a PNG mask holds (16 bits).
PNG_MAX_LABEL = 65535

_MIN_SEAM_LENGTH = 3
_SEAM_MAX_COSINE = -0.75  # the two labels make an angle of at least ~140 degrees at the pixel
_SEAM_SLACK = 0.5  # px of extra span allowed for slanted seams
_SEMANTIC_PARTS_PER_ID = 3
_BLOB_ID = 1


@dataclass(frozen=True)
class Parts:
    """Connected parts of an integer image and their per-part tables.

    Parameters
    ----------
    image : numpy.ndarray
        ``(Y, X)`` part ids, 0 = background.
    owner : numpy.ndarray
        ``(m + 1,)`` the value of the input image in each part (``owner[0] = 0``).
    size : numpy.ndarray
        ``(m + 1,)`` pixels per part.
    bbox : numpy.ndarray
        ``(m + 1, 4)`` ``(y0, x0, y1, x1)`` half-open box of each part.
    """

    image: np.ndarray
    owner: np.ndarray
    size: np.ndarray
    bbox: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Parts:
        """Split an integer image into 8-connected parts of equal value (0 = background)."""
        image = measure.label(values, background=0, connectivity=2)
        m = int(image.max())
        owner = np.zeros(m + 1, dtype=values.dtype)
        owner[image.ravel()] = values.ravel()
        size = np.bincount(image.ravel(), minlength=m + 1)
        bbox = np.zeros((m + 1, 4), dtype=np.int64)
        slices = ndi.find_objects(image)
        if slices:
            bbox[1:] = [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in slices]
        return cls(image=image, owner=owner, size=size, bbox=bbox)

    def touches_border(self, shape: tuple[int, int]) -> np.ndarray:
        """Return ``(m + 1,)`` whether each part touches the image border."""
        y0, x0, y1, x1 = self.bbox.T
        return (y0 == 0) | (x0 == 0) | (y1 == shape[0]) | (x1 == shape[1])

    def group_bbox(self, n: int) -> np.ndarray:
        """Return ``(n + 1, 4)`` the union of the part boxes of each owner ``0..n``."""
        lo = np.full((n + 1, 2), np.iinfo(np.int64).max)
        hi = np.zeros((n + 1, 2), dtype=np.int64)
        np.minimum.at(lo, self.owner[1:], self.bbox[1:, :2])
        np.maximum.at(hi, self.owner[1:], self.bbox[1:, 2:])
        return np.concatenate([lo, hi], axis=1)


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


class Analysis:
    """A label matrix renumbered to dense ids, with everything the checks and fixes share.

    Properties are computed on first use, so a fix pays only for what it needs.

    Parameters
    ----------
    labels : numpy.ndarray
        Non-negative integer labels ``(Y, X)``.
    links : iterable of tuple of int, optional
        Pairs of label ids that are pieces of one object; ids not in ``labels`` are ignored.
    min_size : int
        Smallest part, in pixels, that counts as a cell.
    max_gap : int
        Widest background seam, in pixels, reported as a gap (0 turns the check off).
    blobs : bool, optional
        Whether label 1 marks CLB blobs; ``None`` decides from the mask.
    """

    def __init__(
        self,
        labels: np.ndarray,
        links: Iterable[tuple[int, int]] | None = None,
        *,
        min_size: int = DEFAULT_MIN_SIZE,
        max_gap: int = DEFAULT_MAX_GAP,
        blobs: bool | None = None,
    ) -> None:
        self.labels = labels
        self.shape: tuple[int, int] = labels.shape
        self.min_size = int(min_size)
        self.max_gap = int(max_gap)
        self._blobs = blobs
        self.dense, self.ids, self.sizes = _dense(labels)
        self.n = len(self.ids) - 1
        self.links = _dense_links(links or (), self.ids)

    # ------------------------------------------------------------------ parts and objects

    @cached_property
    def parts(self) -> Parts:
        """8-connected parts of each label id."""
        return Parts.of(self.dense)

    @cached_property
    def big_parts(self) -> np.ndarray:
        """``(n + 1,)`` parts of at least ``min_size`` px per dense id."""
        big = self.parts.size[1:] >= self.min_size
        return np.bincount(self.parts.owner[1:][big], minlength=self.n + 1)

    @cached_property
    def blob(self) -> int:
        """Dense id of the CLB blobs label (label 1), or 0 when there is none."""
        if self.n == 0 or self.ids[1] != _BLOB_ID or self._blobs is False:
            return 0
        if self._blobs:
            return 1
        split = self.big_parts >= 2
        alone = split[1] and not split[2:].any() and self.n >= 3
        return 1 if alone else 0

    @cached_property
    def semantic(self) -> bool:
        """Whether the ids look like classes (binary/semantic mask) rather than instances."""
        keep = np.ones(self.n + 1, dtype=bool)
        keep[[0, self.blob]] = False
        n_ids = int(keep.sum())
        parts = int(self.big_parts[keep].sum())
        return parts >= _SEMANTIC_PARTS_PER_ID and parts >= _SEMANTIC_PARTS_PER_ID * n_ids

    @cached_property
    def object_of(self) -> np.ndarray:
        """``(n + 1,)`` object id of each dense id (linked ids share one; 0 stays 0)."""
        if not self.links.size:
            return np.arange(self.n + 1)
        a, b = self.links.T
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(self.n + 1, self.n + 1))
        _, comp = connected_components(graph, directed=False)
        # renumber components so that background stays 0 and objects are 1..k
        _, obj = np.unique(comp[1:], return_inverse=True)
        return np.concatenate([[0], obj + 1])

    @cached_property
    def object_parts(self) -> Parts:
        """8-connected parts of each object (the label parts when there are no links)."""
        if not self.links.size:
            return self.parts
        return Parts.of(self.object_of[self.dense])

    @cached_property
    def split_objects(self) -> np.ndarray:
        """Object ids in two or more parts of cell size (none for a semantic mask).

        An object whose parts all touch the image border is a cell cut by the border that is
        joined outside the image, not a split label.
        """
        if self.semantic:
            return np.zeros(0, dtype=np.int64)
        parts = self.object_parts
        big = parts.size >= self.min_size
        big[0] = False
        inner = big & ~parts.touches_border(self.shape)
        n_obj = int(self.object_of.max())
        count = np.bincount(parts.owner[big], minlength=n_obj + 1)
        count_inner = np.bincount(parts.owner[inner], minlength=n_obj + 1)
        count[self.object_of[self.blob]] = 0
        return np.flatnonzero((count >= 2) & (count_inner >= 1))

    @cached_property
    def fragments(self) -> np.ndarray:
        """Object part ids smaller than ``min_size`` px (except cells cut by the border)."""
        parts = self.object_parts
        small = parts.size < self.min_size
        small[0] = False
        # a cell cut by the border: all its parts touch the border (joined outside the image)
        touch = parts.touches_border(self.shape)
        away = np.bincount(parts.owner[~touch], minlength=int(self.object_of.max()) + 1)
        small &= ~(touch & (away[parts.owner] == 0))
        if self.blob:
            small &= parts.owner != self.object_of[self.blob]
        return np.flatnonzero(small)

    @cached_property
    def seams(self) -> Seams:
        """Thin background seams between pairs of cells (see the module notes)."""
        return _find_seams(self)

    # ------------------------------------------------------------------ reporting helpers

    def members(self, objects: np.ndarray) -> list[tuple[int, ...]]:
        """Return the original label ids of each object."""
        order = np.argsort(self.object_of[1:], kind="stable") + 1
        bounds = np.searchsorted(self.object_of[order], objects)
        ends = np.searchsorted(self.object_of[order], objects, side="right")
        return [tuple(int(v) for v in self.ids[order[s:e]]) for s, e in zip(bounds, ends)]


def run_qc(
    labels: np.ndarray,
    image_shape: tuple[int, ...] | None = None,
    links: Iterable[tuple[int, int]] | None = None,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    max_gap: int = DEFAULT_MAX_GAP,
    blobs: bool | None = None,
    max_label: int | None = None,
    source: str = "",
) -> QCReport:
    """Check one label matrix for annotation problems.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(Y, X)`` labels, 0 = background. Integer or bool; a float array is reported as
        ``float_mask`` (and checked further when it holds whole numbers).
    image_shape : tuple of int, optional
        Shape of the matching image (``(Y, X)``, ``(Y, X, C)`` or ``(C, Y, X)``), to check that
        they match.
    links : iterable of tuple of int, optional
        Pairs of label ids that are pieces of one object (Omnipose ``_links.txt``); a label in
        several parts joined through its links is not split.
    min_size : int
        Smallest part, in pixels, that counts as a cell; smaller parts are fragments.
    max_gap : int
        Widest background seam, in pixels, between two cells that is reported as a gap; 0
        turns the gap check off.
    blobs : bool, optional
        Whether label 1 marks CLB blobs (regions to ignore); ``None`` decides from the mask.
    max_label : int, optional
        Largest id the mask's file format holds (65535 for PNG). ``None``: the largest value of
        an 8- or 16-bit ``labels`` dtype, otherwise no limit.
    source : str
        Name of the file or layer, kept in the report.

    Returns
    -------
    QCReport
        The problems found, in :data:`~napari_cellseg.qc.report.CHECKS` order.

    Raises
    ------
    ValueError
        If ``labels`` is not 2D, not numeric, or holds negative values.
    """
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2D (Y, X) array, got shape {arr.shape}")
    problems: list[Problem] = []
    if arr.dtype.kind == "f":
        whole = float_is_whole(arr)
        problems.append(_float_problem(arr, whole))
        if not whole:
            problems += shape_problems(arr.shape, image_shape)
            return QCReport(problems, arr.shape, 0, source)
        arr = as_integer(arr)
    arr = integer_labels(arr)
    problems += shape_problems(arr.shape, image_shape)
    if max_label is None and arr.dtype.itemsize <= 2:
        max_label = int(np.iinfo(arr.dtype).max)
    an = Analysis(arr, links, min_size=min_size, max_gap=max_gap, blobs=blobs)
    if an.n == 0:
        problems.append(
            _problem(
                "empty_mask",
                "the mask has no labelled cells: fine for an image that really shows none, "
                "otherwise the cells were not annotated (or saved)",
            )
        )
        return QCReport(problems, arr.shape, 0, source)
    problems += _label_count_problems(an, max_label)
    problems += _semantic_problems(an)
    problems += _split_problems(an)
    problems += _gap_problems(an)
    problems += _fragment_problems(an)
    problems += _border_problems(an)
    problems += _blob_problems(an)
    problems += _consecutive_problems(an)
    order = {check: i for i, check in enumerate(SEVERITY)}
    problems.sort(key=lambda p: order[p.check])
    return QCReport(problems, arr.shape, an.n, source)


# ---------------------------------------------------------------------- array preparation


def float_is_whole(arr: np.ndarray) -> bool:
    """Return whether a float array holds only finite, non-negative whole numbers."""
    return bool(np.isfinite(arr).all() and (arr >= 0).all() and (arr == np.round(arr)).all())


def as_integer(arr: np.ndarray) -> np.ndarray:
    """Cast whole-number float labels to the smallest unsigned integer type that holds them."""
    high = int(arr.max()) if arr.size else 0
    return arr.astype(np.promote_types(np.uint16, np.min_scalar_type(high)))


def integer_labels(arr: np.ndarray) -> np.ndarray:
    """Return bool or non-negative integer 2D labels as an integer array (bool becomes uint8).

    Raises
    ------
    ValueError
        For arrays that are not 2D, other dtypes (floats: see :func:`as_integer`) or negative
        values.
    """
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2D (Y, X) array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise ValueError(f"labels must be >= 0 (0 = background), found {int(arr.min())}")
    return arr


def _dense(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renumber labels to ``1..n``; return the dense image, the original ids and the sizes."""
    flat = labels.ravel()
    high = int(flat.max()) if flat.size else 0
    if high <= flat.size + 65536:  # a lookup table indexed by id is affordable
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=1)
        ids = np.flatnonzero(counts)
        if ids.size == 0 or ids[0] != 0:
            ids = np.concatenate([[0], ids])
        lut = np.zeros(high + 1, dtype=np.int32)
        lut[ids] = np.arange(len(ids), dtype=np.int32)
        return lut[labels], ids.astype(np.int64), counts[ids]
    ids, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if ids[0] != 0:
        ids, inverse, counts = (
            np.concatenate([[0], ids]),
            inverse + 1,
            np.concatenate([[0], counts]),
        )
    return inverse.reshape(labels.shape).astype(np.int32), ids.astype(np.int64), counts


def _dense_links(links: Iterable[tuple[int, int]], ids: np.ndarray) -> np.ndarray:
    """Map link pairs to dense ids, dropping pairs with an id that is not in the mask."""
    pairs = np.asarray(sorted(links), dtype=np.int64).reshape(-1, 2)
    pos = np.clip(np.searchsorted(ids, pairs), 0, len(ids) - 1)
    present = (ids[pos] == pairs).all(axis=1) & (pairs > 0).all(axis=1)
    return pos[present]


# ---------------------------------------------------------------------- gaps


def _find_seams(an: Analysis) -> Seams:
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


# ---------------------------------------------------------------------- problems per check


def _problem(check: str, message: str, **kwargs) -> Problem:
    return Problem(check=check, severity=SEVERITY[check], message=message, **kwargs)


def _float_problem(arr: np.ndarray, whole: bool) -> Problem:
    if whole:
        what = f"stores whole numbers as floating point ({arr.dtype}); save it as integers"
    else:
        what = (
            f"holds non-integer values ({arr.dtype}), like a probability map; threshold and "
            "label it (skimage.measure.label) and save it as integers"
        )
    return _problem("float_mask", f"the mask {what}", fixable=whole)


def shape_problems(
    shape: tuple[int, ...],
    image_shape: tuple[int, ...] | None,
    *,
    channel_axis: int | None = None,
    nchan: int | None = None,
) -> list[Problem]:
    """Return a ``shape_mismatch`` problem unless the mask fits its image.

    The rule is :func:`napari_cellseg.io.datasets.pair_problem`, the one training applies.

    Parameters
    ----------
    shape : tuple of int
        The mask's shape, ``(Y, X)`` or ``(N, Y, X)``.
    image_shape : tuple of int, optional
        The image's shape; ``None`` checks nothing.
    channel_axis, nchan : int, optional
        As for training (``--channel_axis``, ``--nchan``).
    """
    from napari_cellseg.io.datasets import pair_problem

    if image_shape is None:
        return []
    why = pair_problem(image_shape, shape, channel_axis=channel_axis, nchan=nchan)
    return [] if why is None else [_problem("shape_mismatch", why)]


def _label_count_problems(an: Analysis, max_label: int | None) -> list[Problem]:
    high = int(an.ids[-1])
    if max_label is None or high < max_label:
        return []
    return [
        _problem(
            "too_many_labels",
            f"label ids reach {high}, the most this mask format holds ({max_label}): further "
            "cells were clipped or wrapped onto other ids; save masks as 32-bit TIFF, or "
            "crop the image into tiles with fewer cells",
        )
    ]


def _semantic_problems(an: Analysis) -> list[Problem]:
    if not an.semantic:
        return []
    keep = np.ones(an.n + 1, dtype=bool)
    keep[[0, an.blob]] = False
    values = tuple(int(v) for v in an.ids[keep])
    parts = int(an.big_parts[keep].sum())
    shown = ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
    fg = an.dense > 0
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    return [
        _problem(
            "semantic_mask",
            f"this is a binary/semantic mask, not a label matrix: {len(values)} value(s) "
            f"({shown}) cover {parts} separate objects; give each cell its own id "
            "(fix: relabel connected components; touching cells then stay merged)",
            labels=values,
            bbox=(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1),
            fixable=True,
        )
    ]


def _split_problems(an: Analysis) -> list[Problem]:
    objects = an.split_objects
    if not objects.size:
        return []
    parts = an.object_parts
    n_obj = int(an.object_of.max())
    boxes = parts.group_bbox(n_obj)
    problems = []
    for obj, ids in zip(objects, an.members(objects)):
        sizes = np.sort(parts.size[np.flatnonzero(parts.owner == obj)])[::-1]
        what = f"label {ids[0]}" if len(ids) == 1 else "linked labels " + "+".join(map(str, ids))
        problems.append(
            _problem(
                "split_label",
                f"{what} is in {len(sizes)} separate parts ({', '.join(map(str, sizes))} px); "
                "give each part its own id (fix), or, if they are one cell, connect them (or "
                "link touching pieces in a _links.txt file)",
                labels=ids,
                bbox=tuple(int(v) for v in boxes[obj]),
                fixable=True,
            )
        )
    return problems


def _gap_problems(an: Analysis) -> list[Problem]:
    seams = an.seams
    problems = []
    rows = zip(seams.pairs, seams.length, seams.pixels, seams.contact, seams.bbox)
    for (a, b), length, pixels, contact, box in rows:
        la, lb = int(an.ids[a]), int(an.ids[b])
        touch = f"; they touch along only {contact} px" if contact else ""
        problems.append(
            _problem(
                "gap",
                f"labels {la} and {lb} are separated by a thin background seam ({length} px "
                f"long, <= {an.max_gap} px wide, {pixels} px){touch}; cells should meet at "
                "interfaces (fix: grow them into the seam)",
                labels=(la, lb),
                bbox=tuple(int(v) for v in box),
                fixable=True,
            )
        )
    return problems


def _fragment_problems(an: Analysis) -> list[Problem]:
    frags = an.fragments
    if not frags.size:
        return []
    parts = an.object_parts
    # the label ids inside each fragment (several only when linked labels share a part)
    lut = np.zeros(len(parts.size), dtype=bool)
    lut[frags] = True
    on = lut[parts.image]
    part, label = np.unique(np.stack([parts.image[on], an.dense[on]]), axis=1)
    starts, ends = np.searchsorted(part, frags), np.searchsorted(part, frags, side="right")
    problems = []
    for frag, start, end in zip(frags, starts, ends):
        ids = tuple(int(v) for v in an.ids[label[start:end]])
        size = int(parts.size[frag])
        whole = int(an.sizes[an.ids.searchsorted(ids[0])]) == size and len(ids) == 1
        what = f"label {ids[0]}" if whole else "a piece of label " + "+".join(map(str, ids))
        problems.append(
            _problem(
                "fragment",
                f"{what} has only {size} px (< {an.min_size}); remove it (fix) if it is an "
                "annotation slip",
                labels=ids,
                bbox=tuple(int(v) for v in parts.bbox[frag]),
                fixable=True,
            )
        )
    return problems


def _border_problems(an: Analysis) -> list[Problem]:
    d = an.dense
    edge = np.unique(np.concatenate([d[0], d[-1], d[:, 0], d[:, -1]]))
    edge = edge[(edge > 0) & (edge != an.blob)]
    parts = an.parts
    boxes = parts.group_bbox(an.n)
    pieces = np.bincount(parts.owner[1:], minlength=an.n + 1)
    away = np.bincount(parts.owner[~parts.touches_border(an.shape)], minlength=an.n + 1)
    problems = []
    for lab in edge:
        cut = pieces[lab] > 1 and away[lab] == 0
        how = f" in {pieces[lab]} parts (joined outside the image)" if cut else ""
        problems.append(
            _problem(
                "border",
                f"label {int(an.ids[lab])} touches the image border{how}: a cell cut by the "
                "field of view, normal, listed for information",
                labels=(int(an.ids[lab]),),
                bbox=tuple(int(v) for v in boxes[lab]),
            )
        )
    return problems


def _blob_problems(an: Analysis) -> list[Problem]:
    if not an.blob:
        return []
    box = an.parts.group_bbox(an.n)[an.blob]
    pieces = int((an.parts.owner == an.blob).sum())
    return [
        _problem(
            "blobs_label",
            f"label {_BLOB_ID} is in {pieces} separate parts while every other label is one "
            "cell: CLB uses label 1 for 'blobs' (regions to ignore), so it is left out of the "
            "other checks; if label 1 is an ordinary cell, check again with blobs=False "
            "(cellseg qc --blobs no): it is then a split label",
            labels=(_BLOB_ID,),
            bbox=tuple(int(v) for v in box),
        )
    ]


def _consecutive_problems(an: Analysis) -> list[Problem]:
    high = int(an.ids[-1])
    if high == an.n:
        return []
    return [
        _problem(
            "non_consecutive",
            f"label ids are not 1..{an.n}: {an.n} labels use ids up to {high} "
            f"({high - an.n} unused); usually harmless (only equal or different ids matter), "
            "but a links file must use the ids as they are",
        )
    ]
