"""Annotation checks on one label matrix: :func:`run_qc`.

:mod:`.analysis` renumbers the labels and finds parts, objects, splits and fragments;
:mod:`.seams` finds the thin background seams (gaps); :mod:`.problems` turns them into the
report, one function per check.

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

from napari_cellseg.qc.checks.analysis import DEFAULT_MAX_GAP, DEFAULT_MIN_SIZE
from napari_cellseg.qc.checks.problems import PNG_MAX_LABEL, run_qc, shape_problems

__all__ = ["DEFAULT_MAX_GAP", "DEFAULT_MIN_SIZE", "PNG_MAX_LABEL", "run_qc", "shape_problems"]
