"""Setting a training run up: options checked, outputs refused or cleared, samples, model
(fresh, fine-tuned or resumed: one branch), optimiser, and what a checkpoint stores.

Everything is ready (and every refusal said) before the first step, and nothing is written
until the set-up has succeeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from napari_cellseg import __version__
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.export.card import card_metrics, training_card
from napari_cellseg.families import get_family
from napari_cellseg.io.outputs import remove_stale_temporaries
from napari_cellseg.models import ModelSpec
from napari_cellseg.preprocess import NORMALIZATION
from napari_cellseg.runtime import autocast_dtype, pick_device
from napari_cellseg.train import distributed
from napari_cellseg.train.batches import crops_per_epoch
from napari_cellseg.train.logs import csv_path
from napari_cellseg.train.samples import TrainItem


@dataclass
class RunSetup:
    """Everything a run needs before its first step.

    Attributes
    ----------
    config
        The validated options.
    model_path
        Where the model is saved (``--resume``, ``--model`` or the default name).
    items, val_items
        Training and validation samples.
    spec, model
        The network description and the network, on ``device``.
    device, amp_dtype, channels_last
        Where and how it runs.
    optimizer
        With the resumed run's state when resuming.
    start_epoch, history
        Epochs already done and their records (a resumed run's; 0 and empty otherwise).
    n_per_epoch, steps_per_epoch
        Crops and optimiser steps per epoch (of all ranks together under ``torchrun``: a step
        trains on the global batch, ``world_size x batch_size`` crops).
    card
        The model card at the start (:func:`napari_cellseg.export.card.training_card`).
    """

    config: TrainConfig
    model_path: Path
    items: list[TrainItem]
    val_items: Sequence[TrainItem] | None
    spec: ModelSpec
    model: torch.nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    optimizer: torch.optim.Optimizer
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    n_per_epoch: int = 0
    steps_per_epoch: int = 0
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run (all epochs, the resumed ones included)."""
        return self.steps_per_epoch * self.config.n_epochs


def set_up(
    config: TrainConfig,
    items: Sequence[TrainItem] | None = None,
    val_items: Sequence[TrainItem] | None = None,
) -> RunSetup:
    """Check the options and outputs, read the samples and build model and optimiser.

    Under ``torchrun`` every rank sets the same run up (and reads the same ``--resume``
    checkpoint); only rank 0 prepares the output folder.

    Parameters
    ----------
    config
        Training options; validated here.
    items, val_items
        Samples in memory (napari layers); ``None`` reads ``config.dir`` / ``config.test_dir``.

    Raises
    ------
    CellsegError
        For unusable data or options, before any file is written; under ``torchrun`` on every
        rank, also when the ranks were given different options.
    """
    distributed.check_same_config(config)
    default_path = distributed.from_rank_zero(default_model_path(config))  # it holds the time
    with distributed.failing_together():
        run = _build(config, items, val_items, default_path)
    if distributed.is_main():
        run.model_path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(_written_files(config, run.model_path))
    return run


def _build(
    config: TrainConfig,
    items: Sequence[TrainItem] | None,
    val_items: Sequence[TrainItem] | None,
    default_path: Path,
) -> RunSetup:
    """:func:`set_up` up to its first write (no collective step: a refusal on one rank is
    said on every rank by :func:`~napari_cellseg.train.distributed.failing_together`)."""
    from napari_cellseg.models import build_model

    config.validate()
    model_path = Path(config.resume or config.model or default_path)
    _check_outputs(config, model_path)
    family = get_family(config.architecture)
    if items is None:
        if not config.dir:
            raise CellsegError("no training data: pass --dir (or --train_data)")
        items = family.load_items(config.dir, config)
    if val_items is None and config.test_dir:
        val_items = family.load_items(config.test_dir, config)
    items = list(items)
    if not items:
        raise CellsegError("no training samples")
    _warn_sparse([it for it in items if isinstance(it, TrainItem)])

    torch.manual_seed(config.seed)
    device = pick_device("auto" if config.use_gpu else config.device)
    spec = model_spec(config)
    model = build_model(spec)
    start_epoch, history, ckpt = 0, [], None
    source = config.resume or config.pretrained_model
    if source:  # resumed or fine-tuned: the weights (and network shape) of the model file
        from napari_cellseg.models.builtin import resolve_model
        from napari_cellseg.models.checkpoint import check_compatible, load_checkpoint

        ckpt = load_checkpoint(config.resume or resolve_model(config.pretrained_model))
        check_compatible(
            ckpt.spec,
            nchan=spec.nchan,
            nclasses=spec.nclasses,
            dim=spec.dim,
            arch=spec.arch,
            source=source,
        )
        spec = ckpt.spec
        model = build_model(spec)
        model.load_state_dict(ckpt.state_dict)
        if config.resume:
            start_epoch = int(ckpt.epoch or 0)
            history = list(ckpt.meta.get("history", []))
            _warn_schedule_change(config, ckpt.meta.get("training") or {}, start_epoch)
    model.to(device)
    channels_last = device.type in ("cpu", "cuda")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters())
    if config.resume and ckpt is not None and ckpt.optimizer_state:
        optimizer.load_state_dict(ckpt.optimizer_state)
    world = distributed.world_size()
    n_per_epoch = crops_per_epoch(config, len(items), world)
    # --amp auto: bf16 on CUDA only; on a CPU only when asked (--amp on)
    amp = "off" if device.type == "cpu" and config.amp == "auto" else config.amp
    return RunSetup(
        config,
        model_path,
        items,
        val_items,
        spec,
        model,
        device,
        autocast_dtype(device, amp),
        channels_last,
        optimizer,
        start_epoch,
        history,
        n_per_epoch,
        math.ceil(n_per_epoch / (config.batch_size * world)),
        training_card(items, val_items, config, device),
    )


def default_model_path(config: TrainConfig) -> Path:
    """``<first training folder>/models/cellseg_<arch>_nchan<C>_nclasses<K>_<time>.pt``."""
    base = Path(str(config.dir).split("+")[0]) if config.dir else Path.cwd()
    stamp = datetime.now().strftime("%Y_%m_%d_%H_%M_%S")
    return (
        base
        / "models"
        / (
            f"cellseg_{config.architecture}_nchan{config.nchan}_nclasses{config.nclasses}_{stamp}.pt"
        )
    )


def lr_at(config: TrainConfig, epoch_pos: float) -> float:
    """Linear warm-up, then cosine decay to 5% of the base rate (epoch_pos is fractional)."""
    base = config.learning_rate
    warm = max(0, min(config.warmup_epochs, config.n_epochs - 1))
    if warm and epoch_pos < warm:
        return base * max(epoch_pos, 0.05) / warm
    span = max(config.n_epochs - warm, 1)
    t = min(max(epoch_pos - warm, 0.0) / span, 1.0)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    """The ``--optimizer`` over ``params`` with the base rate and weight decay."""
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if config.optimizer == "radam":
        return torch.optim.RAdam(params, lr=lr, betas=(0.95, 0.999), eps=1e-8, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def model_spec(config: TrainConfig) -> ModelSpec:
    """The network description for a config."""
    kwargs: dict[str, Any] = {}
    if config.nbase:
        kwargs["nbase"] = tuple(config.nbase)
    return ModelSpec(
        arch=config.architecture,
        nchan=get_family(config.architecture).input_channels(config),
        nclasses=config.nclasses,
        dim=2,
        dropout=config.dropout,
        **kwargs,
    )


def checkpoint_meta(
    config: TrainConfig, run: RunSetup | None = None, **extra: Any
) -> dict[str, Any]:
    """Everything a prediction needs besides the weights (stored in the checkpoint).

    With ``run``, ``card`` holds its model card, with the metrics of ``extra``
    (``epochs_done``, ``train_loss``, ``val_loss``, ``history``).
    """
    card = {}
    if run is not None:
        metrics = card_metrics(
            extra.get("epochs_done"),
            extra.get("train_loss"),
            extra.get("val_loss"),
            extra.get("history") or (),
        )
        card = {"card": {**run.card, "metrics": metrics}}
    return {
        "normalization": dict(NORMALIZATION),
        "diameter": float(config.diameter),
        "channel_axis": config.channel_axis,
        "chan": config.chan,
        "chan2": config.chan2,
        "blobs": config.blobs,
        "dcan_final_act": config.dcan_final_act,
        "training": config.to_dict(),
        "package": "napari-cellseg",
        "version": __version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        **card,
        **extra,
    }


def _written_files(config: TrainConfig, model_path: Path) -> list[Path]:
    """The files a run writes atomically: the model, its yaml and per-epoch copies."""
    files = [model_path, model_path.with_suffix(".yaml")]
    if config.save_each:
        for epoch in range(1, config.n_epochs + 1):
            copy = model_path.with_name(f"{model_path.stem}_epoch_{epoch:04d}.pt")
            files += [copy, copy.with_suffix(".yaml")]
    return files


def _check_outputs(config: TrainConfig, model_path: Path) -> None:
    """Refuse a new run whose model, yaml or CSV log would replace existing files.

    A resumed run continues its own files.
    """
    if config.resume:
        return
    log = csv_path(config, model_path)
    if model_path.exists():
        raise CellsegError(
            f"{model_path} already exists and a new run would replace it. Continue its training "
            f"with --resume {model_path}, fine-tune it into a new file with --pretrained_model "
            f"{model_path} --model <new name>, or give --model another name. Nothing was written"
        )
    if model_path.with_suffix(".yaml").exists():
        raise CellsegError(
            f"{model_path.with_suffix('.yaml')} already exists and a new run would write the "
            "description of its model there: give --model another name. Nothing was written"
        )
    if log.exists():
        raise CellsegError(
            f"the CSV log {log} already exists and a new run would replace it: give "
            "--csv_log another name (or --resume the run it belongs to). Nothing was written"
        )


def _warn_schedule_change(config: TrainConfig, stored: dict[str, Any], epochs_done: int) -> None:
    """Say so when a resumed run's learning-rate schedule is not the interrupted run's."""
    import dataclasses
    import warnings

    flags = {
        "n_epochs": "--n_epochs",
        "learning_rate": "--learning_rate",
        "warmup_epochs": "--warmup_epochs",
    }
    old = {k: stored[k] for k in flags if k in stored and stored[k] != getattr(config, k)}
    if old:
        changed = [f"{flags[k]} {v} -> {getattr(config, k)}" for k, v in old.items()]
        was = lr_at(dataclasses.replace(config, **old), epochs_done)
        now = lr_at(config, epochs_done)
        warnings.warn(
            f"resuming after epoch {epochs_done} with {', '.join(changed)}: the learning-rate "
            f"schedule is recomputed for the new settings, so the rate goes from {was:.3g} "
            f"(the interrupted run's) to {now:.3g} at this epoch",
            stacklevel=3,
        )


def _warn_sparse(items: Sequence[TrainItem]) -> None:
    import warnings

    empty = [it.name for it in items if not (it.labels > 0).any()]
    if empty:
        warnings.warn(
            f"{len(empty)} training image(s) have no labelled cells and only teach "
            f"background: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}",
            stacklevel=3,
        )
