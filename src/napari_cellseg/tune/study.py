"""Optuna studies over :class:`~napari_cellseg.config.TrainConfig`: CLB's staged search of the
learning rate and the search of the batch size, done right.

Every trial is a real training run (the same generator as ``cellseg train``) on the training
data, judged by its validation loss, which it reports after each epoch so that Optuna's median
pruner stops hopeless trials early. The study lives in an Optuna storage (SQLite by default, any
Optuna RDB URL otherwise): an interrupted study resumes where it stopped, and several machines
can work on one study. Each trial's options and loss curve are stored with it; only the best
trial's model is kept.

The staged learning-rate search follows CLB's ``hypertune tune_lr`` (random draws of
``p = log10(lr)``: 20 draws over [-6, -1] for 5 epochs, 10 over the best p +- 1 for 25, 5 over
the best p +- 0.1 for 50) with its stage-3 range bug fixed: CLB centres stage 3 on a mix of the
stage-1 and stage-2 results, here each stage is centred on the best of the stage before.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError, DivergedError
from napari_cellseg.tune.range_test import scratch_config
from napari_cellseg.tune.storage import TrialReport, database_errors, open_study, report


@dataclass(frozen=True)
class Stage:
    """One stage of the learning-rate search.

    Attributes
    ----------
    draws
        Trials in the stage.
    epochs
        Training epochs of each trial.
    width
        Half-width of the range of ``log10(lr)`` around the previous stage's best; ``None``
        for the first stage, which draws from the whole range.
    """

    draws: int
    epochs: int
    width: float | None = None


#: CLB's schedule (PEERS.md section 4.6) with its stage-3 range bug fixed.
CLB_STAGES: tuple[Stage, ...] = (Stage(20, 5), Stage(10, 25, 1.0), Stage(5, 50, 0.1))
#: Range of log10(lr) of the first stage (CLB's).
POW_RANGE: tuple[float, float] = (-6.0, -1.0)
#: CLB's batch sizes: powers of two from 2 to 32.
BATCH_SIZES: tuple[int, ...] = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a study.

    Attributes
    ----------
    kind
        ``"lr"`` or ``"batch"``.
    best
        The best learning rate or batch size.
    best_val_loss
        Its validation loss.
    best_trial
        Its trial number.
    trials
        Every trial of the study (earlier sessions included), in order.
    model_path
        The best trial's model.
    study_name, storage
        Where the study lives.
    config
        The options with the best value set, ready for ``--args_load_path``.
    """

    kind: str
    best: float
    best_val_loss: float
    best_trial: int
    trials: list[TrialReport]
    model_path: Path
    study_name: str
    storage: str
    config: TrainConfig

    @property
    def best_pow(self) -> float:
        """``log10`` of the best learning rate (CLB's ``best_final_pow.txt``)."""
        import math

        return math.log10(self.best) if self.kind == "lr" else float("nan")


#: Called after every trial with its report.
OnTrial = Callable[[TrialReport], None]


def tune_lr(
    config: TrainConfig,
    *,
    stages: Sequence[Stage] = CLB_STAGES,
    pow_range: tuple[float, float] = POW_RANGE,
    storage: str | None = None,
    study_name: str | None = None,
    model_path: str | Path | None = None,
    items: Sequence[Any] | None = None,
    val_items: Sequence[Any] | None = None,
    on_trial: OnTrial | None = None,
    num_workers: int | None = None,
) -> TuneResult:
    """Search the learning rate in stages, coarse to fine (CLB's ``tune_lr``, on Optuna).

    Parameters
    ----------
    config
        Training options of every trial; ``learning_rate`` and ``n_epochs`` are set per trial.
        Needs validation data (``--val_data``/``--test_dir``) unless ``val_items`` is given.
    stages
        The schedule; :data:`CLB_STAGES` by default.
    pow_range
        ``(low, high)`` of ``log10(lr)`` in the first stage.
    storage, study_name
        Optuna storage URL (default ``sqlite:///<model folder>/tune.db``) and study name
        (default ``cellseg-lr-<architecture>``); an existing study of that name resumes.
    model_path
        Where the best trial's model is kept (default ``config.model`` or ``tuned_lr.pt``).
    items, val_items
        Samples in memory; ``None`` reads ``config.dir`` and ``config.test_dir`` once.
    on_trial
        Called after each trial.
    num_workers
        Data-loader worker processes of each trial (``None``: the config's).

    Returns
    -------
    TuneResult
        With ``best`` the learning rate.

    Raises
    ------
    CellsegError
        For an empty range, no validation data, an unusable or foreign study, or a stage
        in which no trial trained to its end.
    """
    low, high = pow_range
    if not low < high:
        raise CellsegError(
            f"the log10(lr) range {low:g} .. {high:g} is empty: the low end must be below the "
            "high end (e.g. --pow_range=-6,-1)"
        )
    if not stages or any(s.draws < 1 or s.epochs < 1 for s in stages):
        raise CellsegError("every stage needs at least one draw and one epoch")
    session = _Session("lr", config, storage, study_name, model_path, items, val_items)
    for number, stage in enumerate(stages, start=1):
        if stage.width is None or number == 1:
            lo, hi = low, high
        else:
            center = session.best_param_of_stage(number - 1, "log10_lr")
            lo, hi = center - stage.width, center + stage.width

        def objective(
            trial: Any, number: int = number, epochs: int = stage.epochs, span=(lo, hi)
        ) -> float:
            p = trial.suggest_float("log10_lr", *span)
            trial.set_user_attr("stage", number)
            cfg = dataclasses.replace(config, learning_rate=10.0**p, n_epochs=epochs)
            return session.train_trial(trial, cfg, num_workers)

        session.run(objective, stage.draws, stage=number, on_trial=on_trial)
    return session.result(lambda params: 10.0 ** params["log10_lr"], "learning_rate")


def tune_batch(
    config: TrainConfig,
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    storage: str | None = None,
    study_name: str | None = None,
    model_path: str | Path | None = None,
    items: Sequence[Any] | None = None,
    val_items: Sequence[Any] | None = None,
    on_trial: OnTrial | None = None,
    num_workers: int | None = None,
) -> TuneResult:
    """Try batch sizes from small to large (CLB's ``tune_batch``, on Optuna).

    Each trial trains ``config.n_epochs`` epochs at ``config.learning_rate``. A trial that
    runs out of memory is recorded as such and ends the search: larger batches would too.

    Parameters
    ----------
    config
        Training options of every trial; ``batch_size`` is set per trial.
    batch_sizes
        The sizes to try, in increasing order (CLB's 2..32 by default).
    storage, study_name, model_path, items, val_items, on_trial, num_workers
        As for :func:`tune_lr` (default study name ``cellseg-batch-<architecture>``).

    Returns
    -------
    TuneResult
        With ``best`` the batch size.

    Raises
    ------
    CellsegError
        For no sizes, no validation data or an unusable or foreign study, or when no size
        trained to its end.
    """
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise CellsegError(f"batch sizes must be positive integers, not {list(batch_sizes)}")
    session = _Session("batch", config, storage, study_name, model_path, items, val_items)
    for size in sizes:
        if session.out_of_memory_below(size):
            break
        if session.has_trial(batch_size=size):
            continue

        def objective(trial: Any, size: int = size) -> float:
            trial.suggest_categorical("batch_size", sizes)
            trial.set_user_attr("stage", 0)
            return session.train_trial(
                trial, dataclasses.replace(config, batch_size=size), num_workers
            )

        session.study.enqueue_trial({"batch_size": size})
        session.run(objective, 1, stage=0, on_trial=on_trial)
    return session.result(lambda params: int(params["batch_size"]), "batch_size")


class _OutOfMemory(Exception):
    """A trial ran out of memory (recorded on the trial; ends an upward batch search)."""


class _Session:
    """One study opened for a tuning command, its data and where the best model goes."""

    def __init__(
        self,
        kind: str,
        config: TrainConfig,
        storage: str | None,
        study_name: str | None,
        model_path: str | Path | None,
        items: Sequence[Any] | None,
        val_items: Sequence[Any] | None,
    ) -> None:
        from napari_cellseg.families import get_family

        config.validate()
        self.kind, self.config = kind, config
        self.model_path = Path(model_path or config.model or f"tuned_{kind}.pt")
        self.storage = storage or f"sqlite:///{self.model_path.parent / 'tune.db'}"
        self.study_name = study_name or f"cellseg-{kind}-{config.architecture}"
        family = get_family(config.architecture)
        if val_items is None:
            if not config.test_dir:
                raise CellsegError(
                    "tuning judges each trial on validation data: give --val_data (or "
                    "--test_dir) with images the trials do not train on"
                )
            val_items = family.load_items(config.test_dir, config)
        if items is None:
            if not config.dir:
                raise CellsegError("no training data: pass --train_data (or --dir)")
            items = family.load_items(config.dir, config)
        self.items, self.val_items = list(items), list(val_items)
        self.model_path.parent.mkdir(parents=True, exist_ok=True)
        fresh_file = (
            self.storage.startswith("sqlite:///")
            and not Path(self.storage.removeprefix("sqlite:///")).exists()
        )
        if fresh_file and self.model_path.exists():
            raise self._model_exists()
        self.study = open_study(self.storage, self.study_name, kind, config)
        if self.model_path.exists() and not self.study.get_trials(deepcopy=False):
            raise self._model_exists()

    def _model_exists(self) -> CellsegError:
        return CellsegError(
            f"{self.model_path} already exists and a new study would replace it with its "
            "best trial's model: give --model another name (a resumed study keeps "
            "replacing its own best model). Nothing was trained"
        )

    # --- the study --------------------------------------------------------------------------
    def run(self, objective: Callable[[Any], float], draws: int, *, stage: int, on_trial) -> None:
        """Run the trials of a stage that no session has run yet (resume, shared studies)."""
        import optuna

        done = sum(1 for t in self.study.get_trials(deepcopy=False) if _stage(t) == stage)
        todo = draws - done if stage else draws
        if todo <= 0:
            return
        # A fresh, seeded sampler per call: a resumed study does not redraw the same rates.
        self.study.sampler = optuna.samplers.RandomSampler(
            seed=self.config.seed * 1000 + len(self.study.trials)
        )

        def after(study: Any, trial: Any) -> None:
            if on_trial is not None:
                on_trial(report(trial))

        with database_errors(self.storage):
            self.study.optimize(
                objective,
                n_trials=todo,
                catch=(DivergedError, _OutOfMemory),
                callbacks=[after],
                gc_after_trial=True,
            )

    def train_trial(self, trial: Any, cfg: TrainConfig, num_workers: int | None) -> float:
        """Train one trial in a scratch folder, reporting its validation loss each epoch; keep
        its model if it beats every finished trial of the study."""
        from napari_cellseg.models.checkpoint import export_model

        trial.set_user_attr("config", cfg.to_dict())
        with tempfile.TemporaryDirectory(
            prefix=".cellseg_trial_", dir=self.model_path.parent
        ) as tmp:
            scratch = scratch_config(cfg, Path(tmp), f"trial_{trial.number:04d}")
            result = self._train(trial, scratch, num_workers)
            val = float(result.val_loss)
            finished = [t.value for t in _complete(self.study.get_trials(deepcopy=False))]
            if not finished or val < min(finished):
                export_model(
                    result.model_path,
                    self.model_path,
                    meta={"tuning": self._tuning_meta(trial, val)},
                )
        return val

    def _train(self, trial: Any, scratch: TrainConfig, num_workers: int | None) -> Any:
        """The training run of a trial: its curve and time on the trial, pruning, and the
        outcome of a run that diverged or ran out of memory."""
        import optuna

        from napari_cellseg.train import train

        t0 = time.perf_counter()
        curve: list[dict[str, float | None]] = []
        gen = train(scratch, self.items, self.val_items, num_workers=num_workers)
        try:
            while True:
                event = next(gen)
                if event.kind != "epoch":
                    continue
                curve.append({"epoch": event.epoch, "loss": event.loss, "val": event.val_loss})
                trial.set_user_attr("curve", curve)
                trial.set_user_attr("seconds", time.perf_counter() - t0)
                trial.report(float(event.val_loss), event.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {event.epoch}")
        except StopIteration as done:
            return done.value
        except DivergedError as exc:
            trial.set_user_attr("outcome", "diverged")
            trial.set_user_attr("message", str(exc))
            raise
        except (MemoryError, RuntimeError) as exc:
            if not _is_out_of_memory(exc):
                raise
            trial.set_user_attr("outcome", "out of memory")
            trial.set_user_attr("message", str(exc).splitlines()[0])
            raise _OutOfMemory(str(exc)) from exc
        finally:
            gen.close()
            trial.set_user_attr("seconds", time.perf_counter() - t0)

    def _tuning_meta(self, trial: Any, val_loss: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "study": self.study_name,
            "storage": self.storage,
            "trial": trial.number,
            "params": dict(trial.params),
            "val_loss": val_loss,
        }

    # --- questions about the study ----------------------------------------------------------
    def best_param_of_stage(self, stage: int, name: str) -> float:
        """The parameter of the stage's best complete trial."""
        best = _complete([t for t in self.study.get_trials(deepcopy=False) if _stage(t) == stage])
        if not best:
            raise CellsegError(
                f"no trial of stage {stage} trained to its end (all diverged or were pruned): "
                "widen or lower the range (--pow_range) or give the trials more epochs"
            )
        return float(min(best, key=lambda t: t.value).params[name])

    def has_trial(self, **params: Any) -> bool:
        """True if a trial with these parameters ran (or runs): resumed studies skip it.

        Trials that failed without an outcome (a killed session) are run again.
        """
        import optuna

        return any(
            (t.state != optuna.trial.TrialState.FAIL or "outcome" in t.user_attrs)
            and all(t.params.get(k) == v for k, v in params.items())
            for t in self.study.get_trials(deepcopy=False)
        )

    def out_of_memory_below(self, size: int) -> bool:
        """True if a batch size at most ``size`` already ran out of memory."""
        return any(
            t.user_attrs.get("outcome") == "out of memory"
            and int(t.params.get("batch_size", size + 1)) <= size
            for t in self.study.get_trials(deepcopy=False)
        )

    def result(self, value_of: Callable[[dict[str, Any]], float], field: str) -> TuneResult:
        """The study's best trial as a :class:`TuneResult`."""
        trials = self.study.get_trials(deepcopy=False)
        complete = _complete(trials)
        if not complete:
            raise CellsegError(
                f"no trial of study {self.study_name!r} trained to its end: see the trials "
                f"with `optuna trials --storage {self.storage} --study-name {self.study_name}`"
            )
        best = min(complete, key=lambda t: t.value)
        value = value_of(best.params)
        return TuneResult(
            self.kind,
            value,
            float(best.value),
            best.number,
            [report(t) for t in trials],
            self.model_path,
            self.study_name,
            self.storage,
            dataclasses.replace(self.config, **{field: value}),
        )


def _stage(trial: Any) -> int | None:
    return trial.user_attrs.get("stage")


def _complete(trials: Sequence[Any]) -> list[Any]:
    import optuna

    return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]


def _is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of the CPU allocator and of CUDA."""
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
