"""Annotation quality control: checks and fixes on label matrices and on whole datasets.

Pure numpy/scipy/scikit-image: nothing here imports torch, napari or Qt.

>>> report = run_qc(labels, image.shape)       # doctest: +SKIP
>>> report.blocking, report.counts()            # doctest: +SKIP
>>> fixed = fix(labels, "gap")                  # doctest: +SKIP
"""

from napari_cellseg.qc.checks import (
    DEFAULT_MAX_GAP,
    DEFAULT_MIN_SIZE,
    PNG_MAX_LABEL,
    run_qc,
)
from napari_cellseg.qc.dataset import FixSummary, fix_dataset, qc_dataset
from napari_cellseg.qc.fixes import FIX_ORDER, FIXABLE, fix, fix_all
from napari_cellseg.qc.report import CHECKS, SEVERITY, Problem, QCReport

__all__ = [
    "CHECKS",
    "DEFAULT_MAX_GAP",
    "DEFAULT_MIN_SIZE",
    "FIXABLE",
    "FIX_ORDER",
    "FixSummary",
    "PNG_MAX_LABEL",
    "SEVERITY",
    "Problem",
    "QCReport",
    "fix",
    "fix_all",
    "fix_dataset",
    "qc_dataset",
    "run_qc",
]
