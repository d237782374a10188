"""Dataset discovery: find image/mask pairs in the folder layouts of Omnipose, DeLTA, CLB and
the Cell Tracking Challenge.

:func:`discover` only lists files (plus page counts for CLB); it does not decode images.
:func:`check_shapes` compares image and mask sizes from the file headers, and
:func:`load_sample` checks the pair it loads. Layouts (``convention``):

``omnipose``
    ``<base><img_filter>.<ext>`` + ``<base><mask_filter>.tif|.tiff|.png`` (TIFF preferred) +
    optional ``<base>_links.txt`` in one folder, or also one level down with
    ``look_one_level_down`` (then names are ``<subfolder>/<base>``).
``delta``
    ``img/`` + ``seg/`` (+ optional ``wei/``), matched by file stem; extensions may differ.
    ``seg/`` masks may be binary (0/255): :func:`load_mask` labels their connected components.
    In a tracking set (``previmg/``, ``segall/``, ``mot_dau/``) the segmentation pairs are
    ``img/`` + ``segall/`` (all cells at time t).
``clb``
    ``images/`` + ``labels/`` multi-page TIFFs with the same stem, one sample per page
    (names ``<stem>#<page>``).
``ctc``
    Cell Tracking Challenge: ``<seq>/tNNN.tif`` + ``<seq>_GT/SEG/man_segNNN.tif``; only frames
    with a SEG file are samples. The path may be the dataset folder (holding ``01``,
    ``01_GT``, ...), a sequence folder (``01``) or its ``01_GT`` folder.

One module per convention (:mod:`.omnipose`, :mod:`.delta`, :mod:`.clb`, :mod:`.ctc`),
:mod:`.discovery` to choose among them, :mod:`.loading` to read what they found.
"""

from napari_cellseg.io.datasets.discovery import CONVENTIONS, detect_convention, discover
from napari_cellseg.io.datasets.loading import (
    check_shapes,
    load_image,
    load_links,
    load_mask,
    load_sample,
    load_weights,
    pair_problem,
)
from napari_cellseg.io.datasets.samples import Dataset, Sample

__all__ = [
    "CONVENTIONS",
    "Dataset",
    "Sample",
    "check_shapes",
    "detect_convention",
    "discover",
    "load_image",
    "load_links",
    "load_mask",
    "load_sample",
    "load_weights",
    "pair_problem",
]
