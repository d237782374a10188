"""Where a study lives: opening an Optuna storage, the checks on a resumed study, trial reports.

A study is refused when it was made for another search (other data, architecture, crops), and
database errors (a locked SQLite file, a wrong URL) become a message that names the storage.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError

#: Seconds a SQLite study waits for another process's write before giving up.
SQLITE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TrialReport:
    """One finished trial, as the study stored it.

    Attributes
    ----------
    number
        Optuna's trial number.
    stage
        Stage of the learning-rate search (1-based; 0 for a batch trial).
    params
        ``learning_rate`` or ``batch_size``.
    state
        ``"complete"``, ``"pruned"``, ``"diverged"``, ``"out of memory"`` or ``"failed"``.
    val_loss
        Final validation loss (``None`` unless complete).
    epochs
        Epochs it trained.
    seconds
        Its wall time.
    """

    number: int
    stage: int
    params: dict[str, float]
    state: str
    val_loss: float | None
    epochs: int
    seconds: float


def open_study(storage: str, study_name: str, kind: str, config: TrainConfig) -> Any:
    """Create or load a study, refusing one that was made for other data or another search.

    Parameters
    ----------
    storage
        An Optuna RDB URL (``sqlite:///tune.db``, ``postgresql://...``).
    study_name
        The study; an existing one resumes.
    kind
        ``"lr"`` or ``"batch"``.
    config
        The options of the trials: architecture, data and crops must match a resumed study.

    Raises
    ------
    CellsegError
        When the database cannot be opened (locked, not a database, unreachable) or the study
        was made for another search.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wanted = {"kind": kind, **_fingerprint(config)}
    engine: dict[str, Any] = {}
    if storage.startswith("sqlite"):
        engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    with database_errors(storage), warnings.catch_warnings():
        # heartbeats (a killed session's trial is failed, not left running) are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        store = optuna.storages.RDBStorage(
            storage, engine_kwargs=engine, heartbeat_interval=30, grace_period=120
        )
        study = optuna.create_study(
            storage=store,
            study_name=study_name,
            direction="minimize",
            # Hopeless rates are pruned; batch sizes are compared over whole runs (a larger
            # batch makes fewer steps per epoch, so its early losses are not comparable).
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
            if kind == "lr"
            else optuna.pruners.NopPruner(),
            load_if_exists=True,
        )
        have = dict(study.user_attrs)
        if not have:
            for key, value in wanted.items():
                study.set_user_attr(key, value)
        else:
            differ = [k for k in wanted if have.get(k) != wanted[k]]
            if differ:
                k = differ[0]
                raise CellsegError(
                    f"the study {study_name!r} in {storage} was made for {k} = {have.get(k)!r}, "
                    f"not {wanted[k]!r}: give another --study_name (or --storage) for this search"
                )
        optuna.storages.fail_stale_trials(study)
    return study


def report(trial: Any) -> TrialReport:
    """A stored Optuna trial as a :class:`TrialReport`."""
    import optuna

    state = trial.state
    if state == optuna.trial.TrialState.COMPLETE:
        name = "complete"
    elif state == optuna.trial.TrialState.PRUNED:
        name = "pruned"
    elif state == optuna.trial.TrialState.RUNNING:
        name = "running"
    else:
        name = trial.user_attrs.get("outcome", "failed")
    params = dict(trial.params)
    if "log10_lr" in params:
        params = {"learning_rate": 10.0 ** params["log10_lr"]}
    return TrialReport(
        trial.number,
        int(trial.user_attrs.get("stage", 0)),
        params,
        name,
        trial.value if name == "complete" else None,
        len(trial.user_attrs.get("curve", [])),
        float(trial.user_attrs.get("seconds", 0.0)),
    )


def _fingerprint(config: TrainConfig) -> dict[str, Any]:
    """What a resumed study must share with the study it continues."""
    return {
        "architecture": config.architecture,
        "train_data": config.dir,
        "val_data": config.test_dir,
        "crop": list(config.crop_shape),
        "nchan": config.nchan,
        "nclasses": config.nclasses,
    }


@contextmanager
def database_errors(storage: str) -> Iterator[None]:
    """Turn the database errors of a study into a :class:`CellsegError` naming the storage."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        why = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CellsegError(
            f"the study database {storage} could not be used ({why}): if another tune is "
            "writing a SQLite file, wait for it or give another --storage; check that the URL, "
            "the file and its folder are right"
        ) from exc
