"""The model card: what a model was trained on, how well it did, how and where it was made.

A training run stores the card in the model file and its yaml as ``meta['card']``
(:func:`napari_cellseg.train.setup.checkpoint_meta` builds it from :func:`training_card` and
:func:`card_metrics`)::

    {'card_version': 1,
     'command': 'cellseg train --dir data/train ...' | 'napari Train widget' | 'python API (...)',
     'date': '2026-12-05T14:03:12+00:00', 'device': 'cpu' | 'cuda:0 (NVIDIA H100 80GB HBM3)',
     'versions': {'napari-cellseg': ..., 'torch': ..., 'python': ..., 'platform': ...},
     'training_data': {'train': {'folders': [...], 'layers': [...], 'images': 12, 'cells': 340},
                       'validation': {...} | None,
                       'diameter': {'trained_at': 30.0, 'measured': 26.8}},
     'metrics': {'epochs': 20, 'train_loss': 0.41, 'val_loss': 0.52, 'best_val_loss': 0.50,
                 'best_epoch': 17}}

AP figures are not in the card: ``cellseg train --evaluate`` (or ``cellseg evaluate``) scores
the validation images after training.

:func:`model_card` reads it back, completed with the model's architecture and description; for
a model saved before cards existed it builds what the metadata holds (training folders, losses,
package version, date) and says "not recorded" for the rest. :func:`card_text` (the CLI, the
Segment widget) and :func:`card_markdown` (bioimage.io documentation) format it.

Importing this module imports neither torch nor numpy-heavy parts of the package.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cellseg import __version__

if TYPE_CHECKING:
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.models.checkpoint import Checkpoint

CARD_VERSION = 1
NOT_RECORDED = "not recorded"
#: Training images whose mean cell diameter :func:`training_card` measures (evenly spaced).
DIAMETER_SAMPLE = 16

_FRAME_SUFFIX = re.compile(r"\[\d+\]$")


def run_command(argv: Sequence[str] | None = None) -> str:
    """How this training run was started, for the card.

    Parameters
    ----------
    argv
        The process arguments; ``None`` reads ``sys.argv``.

    Returns
    -------
    str
        ``cellseg ...`` (the arguments shell-quoted) when the process is the ``cellseg``
        command, ``napari Train widget`` when the run is in a worker thread of a session
        with the Train widget loaded, else ``python API`` followed by the process arguments.
    """
    argv = list(sys.argv if argv is None else argv)
    widget = "napari_cellseg.napari.train.worker" in sys.modules
    if widget and threading.current_thread() is not threading.main_thread():
        return "napari Train widget"
    prog = argv[0] if argv else ""
    if Path(prog).name in ("cellseg", "cellseg.exe") or prog.endswith(
        os.path.join("napari_cellseg", "cli", "__main__.py")
    ):
        return shlex.join(["cellseg", *argv[1:]])
    return f"python API ({shlex.join(argv)})" if any(argv) else "python API"


def versions() -> dict[str, str]:
    """napari-cellseg, torch and python versions and the platform (torch is not imported)."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = NOT_RECORDED
    return {
        "napari-cellseg": __version__,
        "torch": torch_version,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def device_name(device: Any) -> str:
    """``str(device)``, with the GPU's name for a CUDA device."""
    name = str(device)
    if getattr(device, "type", name.split(":")[0]) == "cuda":
        import torch

        return f"{name} ({torch.cuda.get_device_name(device)})"
    return name


def count_cells(labels: Any, links: Any = (), *, blobs: bool = False) -> int:
    """Cells of one label image: distinct ids > 0, linked pieces counted once.

    Parameters
    ----------
    labels
        Integer label image, 0 = background.
    links
        Pairs of ids that are pieces of one cell.
    blobs
        Label 1 marks CLB "blobs", not a cell.
    """
    import numpy as np

    if links:
        from napari_cellseg.targets.omni import merge_linked_labels

        labels = merge_linked_labels(labels, links)
    lab = np.asarray(labels).ravel()
    if lab.size == 0:
        return 0
    if int(lab.max()) <= 4 * lab.size:  # bincount is linear; unique sorts
        present = np.bincount(lab)[1:] > 0
        ids = np.flatnonzero(present) + 1
    else:
        ids = np.unique(lab[lab > 0])
    return int(len(ids) - (1 if blobs and len(ids) and ids[0] == 1 else 0))


def _data_summary(items: Sequence[Any], folder: str | None) -> dict[str, Any]:
    """Folders (or layer names), images and cells of training items."""
    from napari_cellseg.train.samples import TrainItem

    segmentation = all(isinstance(it, TrainItem) for it in items)
    layers = None
    if not folder:
        layers = list(dict.fromkeys(_FRAME_SUFFIX.sub("", str(it.name)) for it in items))
    return {
        "folders": [str(Path(f).resolve()) for f in folder.split("+")] if folder else None,
        "layers": layers,
        "samples": len(items),
        "images": len(items) if segmentation else None,
        "cells": sum(count_cells(it.labels, it.links, blobs=it.blobs) for it in items)
        if segmentation
        else None,
    }


def _measured_diameter(items: Sequence[Any]) -> float | None:
    """Median mean cell diameter of up to :data:`DIAMETER_SAMPLE` evenly spaced images."""
    import numpy as np

    from napari_cellseg.train.samples import TrainItem, mean_diameter

    frames = [it.labels for it in items if isinstance(it, TrainItem)]
    if not frames:
        return None
    picks = np.linspace(0, len(frames) - 1, min(DIAMETER_SAMPLE, len(frames))).round()
    diameters = [d for d in (mean_diameter(frames[int(i)]) for i in picks) if d > 0]
    return round(float(np.median(diameters)), 2) if diameters else None


def training_card(
    items: Sequence[Any],
    val_items: Sequence[Any] | None,
    config: TrainConfig,
    device: Any,
    *,
    command: str | None = None,
) -> dict[str, Any]:
    """The card of a run at its start (everything but the metrics).

    Parameters
    ----------
    items, val_items
        The run's training and validation samples.
    config
        Its options (folders, diameter).
    device
        Where it trains (a ``torch.device`` or its name).
    command
        How it was started; ``None`` asks :func:`run_command`.

    Returns
    -------
    dict
        Plain values, ready for a model file and its yaml.
    """
    return {
        "card_version": CARD_VERSION,
        "command": run_command() if command is None else command,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device_name(device),
        "versions": versions(),
        "training_data": {
            "train": _data_summary(items, config.dir),
            "validation": None if not val_items else _data_summary(val_items, config.test_dir),
            "diameter": {
                "trained_at": float(config.diameter),
                "measured": _measured_diameter(items),
            },
        },
    }


def card_metrics(
    epochs_done: int | None,
    train_loss: float | None,
    val_loss: float | None,
    history: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The metrics part of a card: final losses, the best validation loss and its epoch.

    Parameters
    ----------
    epochs_done
        Epochs trained.
    train_loss, val_loss
        Final losses (``val_loss`` None without validation data); the last record of
        ``history`` replaces them when there is one (its ``loss`` is the epoch's mean, where
        ``train_loss`` is the last step's).
    history
        The per-epoch records (``epoch``, ``loss``, ``val_loss``).
    """
    if history:
        train_loss, val_loss = history[-1].get("loss"), history[-1].get("val_loss")
    vals = [(r["val_loss"], r["epoch"]) for r in history if r.get("val_loss") is not None]
    best = min(vals) if vals else (None, None)
    return {
        "epochs": epochs_done,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "best_val_loss": best[0],
        "best_epoch": best[1],
    }


def _folders(text: str | None) -> list[str] | None:
    return str(text).split("+") if text else None


def _card_from_meta(meta: dict[str, Any], epoch: int | None) -> dict[str, Any]:
    """What the metadata of a model without a card says (the rest is "not recorded")."""
    training = meta.get("training") or {}

    def data(folder: str | None) -> dict[str, Any]:
        return {
            "folders": _folders(folder),
            "layers": None if folder else NOT_RECORDED,
            "samples": NOT_RECORDED,
            "images": NOT_RECORDED,
            "cells": NOT_RECORDED,
        }

    history = meta.get("history") or []
    last = history[-1] if history else {}
    return {
        "card_version": None,
        "command": NOT_RECORDED,
        "date": meta.get("created", NOT_RECORDED),
        "device": NOT_RECORDED,
        "versions": {
            "napari-cellseg": meta.get("version") or meta.get("package_version") or NOT_RECORDED,
            "torch": NOT_RECORDED,
            "python": NOT_RECORDED,
            "platform": NOT_RECORDED,
        },
        "training_data": {
            "train": data(training.get("dir")),
            "validation": data(training["test_dir"]) if training.get("test_dir") else None,
            "diameter": {
                "trained_at": meta.get("diameter", training.get("diameter", NOT_RECORDED)),
                "measured": NOT_RECORDED,
            },
        },
        "metrics": card_metrics(
            meta.get("epochs_done", epoch),
            meta.get("train_loss", last.get("loss")),
            meta.get("val_loss", last.get("val_loss")),
            history,
        ),
    }


def model_card(model: str | os.PathLike | Checkpoint) -> dict[str, Any]:
    """The card of a model: the stored one, or what its metadata says for an older model.

    Parameters
    ----------
    model
        A built-in model name, a model file, the yaml beside it, or a loaded checkpoint.

    Returns
    -------
    dict
        The card's fields (see the module docstring) plus ``name``, ``file``, ``description``,
        ``model`` (architecture, channels, classes, dim, widths, parameters, epochs) and
        ``recorded`` (whether the file holds a card; False: fields it lacked say
        "not recorded").

    Raises
    ------
    CellsegError
        Not a model file (the loader's message).
    """
    from napari_cellseg.models.checkpoint import Checkpoint, load_checkpoint

    if not isinstance(model, Checkpoint):
        from napari_cellseg.models.builtin import resolve_model

        model = load_checkpoint(resolve_model(model))
    parameters = sum(int(t.numel()) for t in model.state_dict.values())
    return _card(model.path, model.spec.to_dict(), model.meta, model.epoch, parameters)


def described_card(model: str | os.PathLike) -> dict[str, Any] | None:
    """The card from the yaml beside a model, without reading the weights (nor torch).

    Parameters
    ----------
    model
        A built-in model name, a model file or its yaml.

    Returns
    -------
    dict or None
        As :func:`model_card`, with ``parameters`` "not recorded"; None when there is no
        readable napari-cellseg yaml beside the model.
    """
    import yaml

    from napari_cellseg.errors import CellsegError
    from napari_cellseg.models.builtin import resolve_model

    try:
        path = resolve_model(model)
        text = path.with_suffix(".yaml").read_text(encoding="utf-8")
        info = yaml.safe_load(text)
    except (CellsegError, OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("spec"), dict):
        return None
    if path.suffix in (".yaml", ".yml") and isinstance(info.get("model"), str):
        path = path.parent / info["model"]
    return _card(path, info["spec"], info.get("meta") or {}, info.get("epoch"), NOT_RECORDED)


def _card(
    path: Path, spec: dict[str, Any], meta: dict[str, Any], epoch: int | None, parameters: Any
) -> dict[str, Any]:
    """A card from a model's spec and metadata: the stored card over what the metadata says."""
    stored = meta.get("card")
    card = {
        "name": path.stem,
        "file": str(path),
        "description": meta.get("description", NOT_RECORDED),
        "model": {
            "architecture": spec.get("arch"),
            "nchan": spec.get("nchan"),
            "nclasses": spec.get("nclasses"),
            "dim": spec.get("dim"),
            "nbase": list(spec.get("nbase") or []),
            "parameters": parameters,
            "epochs": epoch,
        },
        **_card_from_meta(meta, epoch),
        "recorded": isinstance(stored, dict),
    }
    if isinstance(stored, dict):
        card.update(stored)
    return card


# --- formatting ----------------------------------------------------------------------------


def _value(v: Any, digits: int = 4) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _sources(part: dict[str, Any]) -> str:
    """Folders with repeats counted ("a (x3), b"), or the napari layers."""
    folders = part.get("folders")
    if folders:
        counts = {f: folders.count(f) for f in dict.fromkeys(folders)}
        return ", ".join(f if n == 1 else f"{f} (x{n})" for f, n in counts.items())
    layers = part.get("layers")
    if isinstance(layers, list):
        shown = ", ".join(layers[:5]) + (f" and {len(layers) - 5} more" if len(layers) > 5 else "")
        return f"napari layers {shown}"
    return NOT_RECORDED


def _data_line(part: dict[str, Any] | None) -> str:
    if part is None:
        return "none"
    images, cells = part.get("images"), part.get("cells")
    counts = f"{_value(images)} images, {_value(cells)} cells"
    if images == cells == NOT_RECORDED:
        counts = "images and cells not recorded"
    elif images is None and isinstance(part.get("samples"), int):
        counts = f"{part['samples']} samples"
    return f"{_sources(part)}; {counts}"


def _diameter_line(d: dict[str, Any]) -> str:
    trained = d.get("trained_at")
    if isinstance(trained, (int, float)):
        trained = f"{trained:g} px" if trained > 0 else "0 (images used at their own scale)"
    measured = d.get("measured")
    if isinstance(measured, (int, float)):
        return f"trained at {trained}; training cells measure {measured:g} px (median)"
    if measured is None:
        return f"trained at {trained}; no training cells measured"
    return f"trained at {trained}; size of the training cells {_value(measured)}"


def _metrics_line(m: dict[str, Any], validated: bool) -> str:
    parts = [f"{_value(m.get('epochs'))} epochs", f"final train loss {_value(m.get('train_loss'))}"]
    val = _value(m.get("val_loss"))
    parts.append(f"val loss {val}" if validated else "no validation data")
    if m.get("best_val_loss") is not None:
        parts.append(f"best val loss {_value(m['best_val_loss'])} (epoch {m.get('best_epoch')})")
    return ", ".join(parts)


def _model_line(m: dict[str, Any]) -> str:
    nbase = "-".join(str(n) for n in m["nbase"])
    line = (
        f"{m['architecture']}, {m['nchan']} channel(s), nclasses {m['nclasses']}, {m['dim']}D, "
        f"widths {nbase}"
    )
    params = m.get("parameters")
    return f"{line}, {params / 1e6:.2f} M parameters" if isinstance(params, int) else line


def _versions_line(v: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v.get(k, NOT_RECORDED)}" for k in ("napari-cellseg", "torch", "python"))


def _rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    data = card["training_data"]
    return [
        ("model", _model_line(card["model"])),
        ("training data", _data_line(data["train"])),
        ("validation data", _data_line(data["validation"])),
        ("diameter", _diameter_line(data["diameter"])),
        ("metrics", _metrics_line(card["metrics"], data["validation"] is not None)),
        ("command", _value(card["command"])),
        ("date", _value(card["date"])),
        ("device", _value(card["device"])),
        ("versions", _versions_line(card["versions"])),
    ]


def card_text(card: dict[str, Any]) -> str:
    """The card as plain text, one ``field: value`` line each (``cellseg info``, the widget).

    Parameters
    ----------
    card
        From :func:`model_card`.
    """
    lines = [f"{card['name']}: {card['description']}", f"{'file':<16} {card['file']}"]
    lines += [f"{key:<16} {value}" for key, value in _rows(card)]
    if not card.get("recorded"):
        lines.append("(saved before model cards: what it did not record is 'not recorded')")
    return "\n".join(lines)


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a Markdown document (e.g. a bioimage.io model's documentation).

    Parameters
    ----------
    card
        From :func:`model_card`.
    """

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"# {card['name']}",
        "",
        str(card["description"]),
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {cell(value)} |" for key, value in _rows(card)),
        "",
        f"Trained with napari-cellseg {card['versions'].get('napari-cellseg', NOT_RECORDED)}.",
    ]
    if not card.get("recorded"):
        lines += ["", "_Saved before model cards: what it did not record is 'not recorded'._"]
    if card["command"] not in (NOT_RECORDED, None):
        lines += ["", "## Training command", "", "```bash", str(card["command"]), "```"]
    return "\n".join(lines) + "\n"
