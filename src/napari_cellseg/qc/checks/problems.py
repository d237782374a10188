"""The checks of :func:`run_qc`, one function per kind of problem."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_cellseg.qc.checks.analysis import (
    BLOB_ID,
    DEFAULT_MAX_GAP,
    DEFAULT_MIN_SIZE,
    Analysis,
    as_integer,
    integer_labels,
)
from napari_cellseg.qc.report import SEVERITY, Problem, QCReport

#: Largest label id a PNG mask holds (16 bits).
PNG_MAX_LABEL = 65535


def run_qc(
    labels: np.ndarray,
    image_shape: tuple[int, ...] | None = None,
    links: Iterable[tuple[int, int]] | None = None,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    max_gap: int = DEFAULT_MAX_GAP,
    blobs: bool | None = None,
    border: bool = False,
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
    border : bool
        Also list each label that touches the image border (``border``, info). Off by
        default: cells cut by the field of view are normal, and a cut cell is never taken for
        a split label or a fragment either way.
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
        whole = as_integer(arr)
        problems.append(_float_problem(arr, whole is not None))
        if whole is None:
            problems += shape_problems(arr.shape, image_shape)
            return QCReport(problems, arr.shape, 0, source)
        arr = whole
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
    if border:
        problems += _border_problems(an)
    problems += _blob_problems(an)
    problems += _consecutive_problems(an)
    order = {check: i for i, check in enumerate(SEVERITY)}
    problems.sort(key=lambda p: order[p.check])
    return QCReport(problems, arr.shape, an.n, source)


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
            f"label {BLOB_ID} is in {pieces} separate parts while every other label is one "
            "cell: CLB uses label 1 for 'blobs' (regions to ignore), so it is left out of the "
            "other checks; if label 1 is an ordinary cell, check again with blobs=False "
            "(cellseg qc --blobs no): it is then a split label",
            labels=(BLOB_ID,),
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
