"""Hyper-parameter tuning: the learning-rate range test and Optuna studies over TrainConfig.

- :func:`range_test` / :func:`run_range_test`: one short run with the rate rising
  exponentially; the suggested rate in seconds to minutes.
- :func:`tune_lr`: CLB's staged coarse-to-fine search of ``log10(lr)`` as Optuna trials, with
  median pruning, in a persistent study.
- :func:`tune_batch`: batch sizes in powers of two up to what memory allows.
- :mod:`napari_cellseg.tune.outputs`: the yaml for ``--args_load_path``, the plots and CLB's
  ``best_final_pow.txt``.

Optuna is imported only by the studies (``pip install "napari-cellseg[tune]"``).
"""

from napari_cellseg.tune.range_test import (
    RangePoint,
    RangeTestResult,
    check_lr_range,
    range_test,
    run_range_test,
)
from napari_cellseg.tune.storage import TrialReport, open_study
from napari_cellseg.tune.study import (
    BATCH_SIZES,
    CLB_STAGES,
    POW_RANGE,
    Stage,
    TuneResult,
    tune_batch,
    tune_lr,
)

__all__ = [
    "BATCH_SIZES",
    "CLB_STAGES",
    "POW_RANGE",
    "RangePoint",
    "RangeTestResult",
    "Stage",
    "TrialReport",
    "TuneResult",
    "check_lr_range",
    "open_study",
    "range_test",
    "run_range_test",
    "tune_batch",
    "tune_lr",
]
