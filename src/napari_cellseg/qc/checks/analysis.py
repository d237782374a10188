"""A label matrix renumbered to dense ids, and what the checks and fixes share about it:
connected parts, objects (labels joined by links), split labels, fragments, CLB blobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage import measure

from napari_cellseg.qc.checks.seams import Seams, find_seams

#: Default smallest part, in pixels, that counts as a cell (Cellpose/Omnipose ``min_size``).
DEFAULT_MIN_SIZE = 15
#: Default widest background seam, in pixels, between two cells that counts as a gap.
DEFAULT_MAX_GAP = 2

_SEMANTIC_PARTS_PER_ID = 3
#: The label id CLB gives its blobs (regions to ignore).
BLOB_ID = 1


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
        if self.n == 0 or self.ids[1] != BLOB_ID or self._blobs is False:
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
        """Thin background seams between pairs of cells (see the package notes)."""
        return find_seams(self)

    # ------------------------------------------------------------------ reporting helpers

    def members(self, objects: np.ndarray) -> list[tuple[int, ...]]:
        """Return the original label ids of each object."""
        order = np.argsort(self.object_of[1:], kind="stable") + 1
        bounds = np.searchsorted(self.object_of[order], objects)
        ends = np.searchsorted(self.object_of[order], objects, side="right")
        return [tuple(int(v) for v in self.ids[order[s:e]]) for s, e in zip(bounds, ends)]


# ---------------------------------------------------------------------- array preparation


def float_is_whole(arr: np.ndarray) -> bool:
    """Return whether a float array holds only finite, non-negative whole numbers."""
    return bool(np.isfinite(arr).all() and (arr >= 0).all() and (arr == np.round(arr)).all())


def as_integer(arr: np.ndarray) -> np.ndarray | None:
    """Cast float labels to the smallest unsigned integer type that holds them, or return None
    when they are not all finite, non-negative whole numbers (:func:`float_is_whole`)."""
    if not float_is_whole(arr):
        return None
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
