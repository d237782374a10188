"""Fixes for the QC checks that have one: :func:`fix` (one check) and :func:`fix_all`.

A fix finds its problems exactly as :func:`~napari_cellseg.qc.checks.run_qc` does (same
parameters, same definitions) and changes only those pixels; it returns a new array and never
modifies its input. Ids are kept, except that new parts get new ids above the largest one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_cellseg.qc.checks.analysis import (
    DEFAULT_MAX_GAP,
    DEFAULT_MIN_SIZE,
    Analysis,
    as_integer,
    integer_labels,
)

#: Checks with a fix, in the order :func:`fix_all` applies them (each fix can expose the next
#: check's problems: a split part below ``min_size`` is then a fragment).
FIX_ORDER: tuple[str, ...] = ("float_mask", "semantic_mask", "split_label", "fragment", "gap")

#: Checks that :func:`fix` can repair.
FIXABLE: frozenset[str] = frozenset(FIX_ORDER)

Links = set[tuple[int, int]]


def fix(
    labels: np.ndarray,
    check: str,
    *,
    links: Iterable[tuple[int, int]] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    max_gap: int = DEFAULT_MAX_GAP,
    blobs: bool | None = None,
) -> np.ndarray:
    """Repair the problems of one check and return a new label matrix.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(Y, X)`` labels (float only for ``check='float_mask'``).
    check : str
        One of :data:`FIXABLE`:

        ``'float_mask'``
            whole-number float labels cast to an unsigned integer type;
        ``'semantic_mask'``
            every 8-connected part of equal value gets its own id (touching cells of a binary
            mask stay merged);
        ``'split_label'``
            the largest part of a split label keeps its id, the others get new ids;
        ``'fragment'``
            fragments are set to background;
        ``'gap'``
            the pixels of each reported seam take the id of their nearest label; nothing else
            (open background, notches beside real interfaces) changes.
    links : iterable of tuple of int, optional
        Linked label ids, as for :func:`~napari_cellseg.qc.checks.run_qc`.
    min_size, max_gap, blobs
        As for :func:`~napari_cellseg.qc.checks.run_qc`; use the same values.

    Returns
    -------
    numpy.ndarray
        A new array: the input's dtype, or a wider one when new ids do not fit it. Unchanged
        (but still a copy) when the check finds nothing.

    Raises
    ------
    ValueError
        If ``check`` has no fix, or the labels cannot be fixed by it (float labels for any
        other check, or float labels that are not whole numbers).
    """
    if check not in FIXABLE:
        raise ValueError(
            f"check {check!r} has no automatic fix; fixable checks: {', '.join(FIX_ORDER)}"
        )
    arr = np.asarray(labels)
    if check == "float_mask":
        if arr.dtype.kind != "f":
            return arr.copy()
        whole = as_integer(arr)
        if whole is None:
            raise ValueError(
                "float labels with fractional, negative or non-finite values cannot be cast; "
                "threshold and label them first"
            )
        return whole
    if arr.dtype.kind == "f":
        raise ValueError("the labels are floating point: fix 'float_mask' first")
    arr = integer_labels(arr)
    an = Analysis(arr, links, min_size=min_size, max_gap=max_gap, blobs=blobs)
    if an.n == 0:
        return arr.copy()
    if check == "semantic_mask":
        return _relabel_parts(an) if an.semantic else arr.copy()
    if check == "split_label":
        return _split(an)
    out = arr.copy()
    if check == "fragment":
        drop = np.zeros(len(an.object_parts.size), dtype=bool)
        drop[an.fragments] = True
        out[drop[an.object_parts.image]] = 0
        return out
    seams = an.seams  # check == "gap"
    out.ravel()[seams.index] = an.ids[seams.nearest]
    return out


def fix_all(
    labels: np.ndarray,
    *,
    links: Iterable[tuple[int, int]] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    max_gap: int = DEFAULT_MAX_GAP,
    blobs: bool | None = None,
) -> tuple[np.ndarray, Links]:
    """Apply every fix in :data:`FIX_ORDER` and keep the links that still make sense.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(Y, X)`` labels.
    links : iterable of tuple of int, optional
        Linked label ids.
    min_size, max_gap, blobs
        As for :func:`~napari_cellseg.qc.checks.run_qc`.

    Returns
    -------
    labels : numpy.ndarray
        The fixed labels (a new array).
    links : set of tuple of int
        The links whose ids both still exist; none after a semantic-mask fix, whose new ids
        have nothing to do with the old ones.
    """
    out = np.asarray(labels)
    kept: Links = set(links or ())
    params = {"min_size": min_size, "max_gap": max_gap, "blobs": blobs}
    for check in FIX_ORDER:
        fixed = fix(out, check, links=kept, **params)
        if check == "semantic_mask" and not np.array_equal(fixed, out):
            kept = set()
        out = fixed
    present = set(np.unique(out).tolist())
    return out, {(a, b) for a, b in kept if a in present and b in present}


def _fit_dtype(dtype: np.dtype, high: int) -> np.dtype:
    """Return ``dtype`` if it holds ``high``, else the smallest wider integer type that does."""
    if high <= np.iinfo(dtype).max:
        return dtype
    return np.promote_types(dtype, np.min_scalar_type(high))


def _relabel_parts(an: Analysis) -> np.ndarray:
    parts = an.parts.image
    return parts.astype(_fit_dtype(an.labels.dtype, int(parts.max())))


def _split(an: Analysis) -> np.ndarray:
    parts = an.object_parts
    split = np.zeros(int(an.object_of.max()) + 1, dtype=bool)
    split[an.split_objects] = True
    candidates = np.flatnonzero(split[parts.owner])
    # the largest part of each split object keeps its ids; every other part gets new ones
    order = candidates[np.lexsort((-parts.size[candidates], parts.owner[candidates]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = parts.owner[order[1:]] != parts.owner[order[:-1]]
    move = np.zeros(len(parts.size), dtype=bool)
    move[order[~first]] = True
    on = move[parts.image]
    keys = parts.image[on].astype(np.int64) * (an.n + 1) + an.dense[on]
    _, new = np.unique(keys, return_inverse=True)
    high = int(an.ids[-1])
    out = an.labels.astype(_fit_dtype(an.labels.dtype, high + len(np.unique(new))))
    out[on] = high + 1 + new
    return out
