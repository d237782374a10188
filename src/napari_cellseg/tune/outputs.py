"""What a tuning command leaves behind: the options yaml, the plots, CLB's ``best_final_pow.txt``.

Every file is written atomically; the yaml is a full set of training options (the tuned one
set), ready for ``cellseg train --args_load_path``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from napari_cellseg.config import TrainConfig
from napari_cellseg.io.outputs import atomic_path
from napari_cellseg.tune.range_test import RangeTestResult
from napari_cellseg.tune.study import TuneResult

#: Options that describe one run's files, not the recipe: left out of the tuned yaml.
_RUN_FILES = ("model", "resume", "csv_log", "tb_dir", "args_load_path")


def write_options(config: TrainConfig, path: str | Path, *, comment: str) -> Path:
    """Write ``config`` as a yaml for ``--args_load_path``, without its run-specific files.

    Parameters
    ----------
    config : TrainConfig
        The options, the tuned one set.
    path : str or pathlib.Path
        The yaml file.
    comment : str
        First line (after ``#``), e.g. where the value comes from.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    data = {k: v for k, v in config.to_dict().items() if k not in _RUN_FILES}
    text = f"# {comment}\n" + yaml.safe_dump(data, sort_keys=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_best_pow(result: TuneResult, folder: str | Path) -> Path:
    """CLB's ``best_final_pow.txt``: ``log10`` of the best learning rate, for old scripts."""
    path = Path(folder) / "best_final_pow.txt"
    with atomic_path(path) as tmp:
        tmp.write_text(f"{result.best_pow}\n")
    return path


def plot_range_test(result: RangeTestResult, path: str | Path) -> Path:
    """Loss against learning rate (log axis), the suggested rate marked; a PNG."""
    fig, ax = _figure()
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss per step")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed")
    ax.axvline(
        result.suggested_lr, color="C3", ls="--", label=f"suggested {result.suggested_lr:.2g}"
    )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.set_title("learning-rate range test")
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_trials(result: TuneResult, path: str | Path) -> Path:
    """Validation loss of each trial against its learning rate or batch size; a PNG.

    Complete trials are dots (one colour per stage), trials that did not finish (pruned,
    diverged, out of memory) crosses along the top, the best trial is circled.
    """
    fig, ax = _figure()
    key = "learning_rate" if result.kind == "lr" else "batch_size"
    done = [t for t in result.trials if t.state == "complete"]
    others = [t for t in result.trials if t.state != "complete" and key in t.params]
    stages = sorted({t.stage for t in done})
    for s in stages:
        ts = [t for t in done if t.stage == s]
        label = f"stage {s}" if result.kind == "lr" else "complete"
        ax.scatter([t.params[key] for t in ts], [t.val_loss for t in ts], label=label, s=24)
    if done and others:
        top = max(t.val_loss for t in done)
        ax.scatter(
            [t.params[key] for t in others],
            [top] * len(others),
            marker="x",
            color="0.5",
            label="pruned / diverged / out of memory",
        )
    ax.scatter(
        [result.best], [result.best_val_loss], s=160, facecolors="none", edgecolors="C3", lw=2
    )
    if result.kind == "lr":
        ax.set_xscale("log")
    else:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(key.replace("_", " "))
    ax.set_ylabel("validation loss (end of trial)")
    ax.set_title(f"study {result.study_name}: best {key} {result.best:.3g}")
    ax.legend(loc="best")
    return _save(fig, path)


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
