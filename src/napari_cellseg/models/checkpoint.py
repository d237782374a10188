"""The self-describing model file and the yaml beside it.

A model file is ``torch.save`` of a dict holding only tensors and plain python values (str, int,
float, bool, None, lists, tuples and str-keyed dicts), so it loads with
``torch.load(weights_only=True)``: loading never runs code from the file. Layout (version 1)::

    {'format': 'napari-cellseg', 'format_version': 1,
     'spec': ModelSpec.to_dict(), 'state_dict': {name: tensor},
     'meta': {'package_version', 'created', 'normalization', 'diameter', 'config', ...},
     'optimizer': optimizer.state_dict() or None, 'scheduler': dict or None,
     'epoch': int or None, 'rng': get_rng_state() or None}

``<stem>.yaml`` beside it repeats the spec, the epoch and ``meta`` (training config included) for
people; :func:`load_checkpoint` also accepts that yaml. Both files are written atomically.
"""

from __future__ import annotations

import os
import pickle
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import yaml

from napari_cellseg import __version__
from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family
from napari_cellseg.io.outputs import atomic_path
from napari_cellseg.models import ModelSpec, build_model

FORMAT = "napari-cellseg"
FORMAT_VERSION = 1
YAML_SUFFIXES = (".yaml", ".yml")

#: Fields compared by :func:`check_compatible`, with the command-line flag that sets each.
_FLAGS = {"arch": "--architecture", "nchan": "--nchan", "nclasses": "--nclasses", "dim": "--dim"}


@dataclass
class Checkpoint:
    """The contents of a model file.

    Attributes
    ----------
    path
        The model file read (not the yaml, when a yaml was given).
    spec
        The architecture; :func:`napari_cellseg.models.build_model` rebuilds the network.
    state_dict
        The weights.
    meta
        Normalisation, diameter, training config, package version, creation time, ...
    optimizer_state
        ``optimizer.state_dict()`` at the save, for ``--resume``.
    scheduler_state
        Learning-rate schedule state at the save.
    epoch
        Epochs completed at the save.
    rng
        Random-number-generator states (:func:`get_rng_state`), for :func:`set_rng_state`.
    format_version
        Version of the file layout.
    """

    path: Path
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    epoch: int | None = None
    rng: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION


def _plain(obj: Any, where: str, *, tensors: bool = True) -> Any:
    """``obj`` as plain python values (numpy values and paths converted, tuples as lists).

    Tensors are kept (detached, on the CPU) or, with ``tensors=False``, turned into lists.
    Anything else is a programming error: ``TypeError`` naming ``where``.
    """
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu() if tensors else obj.tolist()
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v, f"{where}.{k}", tensors=tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", tensors=tensors) for i, v in enumerate(obj)]
    raise TypeError(f"{where} holds a {type(obj).__name__}, which a model file cannot store")


def get_rng_state(generator: np.random.Generator | None = None) -> dict[str, Any]:
    """States of torch's and python's global RNGs, and of the numpy ``generator`` if given.

    The result holds only tensors and plain values, ready for ``save_checkpoint(rng_state=...)``.
    numpy's legacy global RNG is not saved: the project draws numpy numbers from Generators.
    """
    return {
        "torch": torch.get_rng_state(),
        "python": _plain(random.getstate(), "rng.python"),
        "generator": None
        if generator is None
        else _plain(generator.bit_generator.state, "rng.generator"),
    }


def set_rng_state(state: dict[str, Any], generator: np.random.Generator | None = None) -> None:
    """Restore the states saved by :func:`get_rng_state` (``generator`` in place, if given)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if generator is not None and state["generator"] is not None:
        generator.bit_generator.state = state["generator"]


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in its folder, then ``os.replace`` it."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        write(f)


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    spec: ModelSpec,
    meta: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler_state: dict[str, Any] | None = None,
    epoch: int | None = None,
    rng_state: dict[str, Any] | None = None,
    write_yaml: bool = True,
) -> Path:
    """Save a model file (and ``<stem>.yaml`` beside it), each atomically.

    Parameters
    ----------
    path
        The model file, e.g. ``models/cellseg_omni.pt``; its folder is created if needed and an
        existing file is replaced only once the new one is complete.
    model
        The network; its ``state_dict`` is stored contiguous, on the CPU.
    spec
        The architecture of ``model``.
    meta
        Plain values (numpy values and paths are converted): normalisation, diameter, the
        training config as a dict, ... ``package_version`` and ``created`` are added unless given.
    optimizer, scheduler_state, epoch, rng_state
        Training state for ``--resume``; ``rng_state`` from :func:`get_rng_state`.
    write_yaml
        Also write the human-readable ``<stem>.yaml``.

    Returns
    -------
    Path
        The model file written.
    """
    path = Path(path)
    if path.suffix in YAML_SUFFIXES:
        raise ValueError(f"{path}: the model file needs a suffix other than {path.suffix}")
    meta = _plain(
        {
            "package_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **meta,
        },
        "meta",
    )
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": meta,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": _plain(scheduler_state, "scheduler_state"),
        "epoch": epoch,
        "rng": _plain(rng_state, "rng_state"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: torch.save(payload, f))
    if write_yaml:
        text = yaml.safe_dump(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": path.name,
                "epoch": epoch,
                "spec": payload["spec"],
                "meta": _plain(meta, "meta", tensors=False),
            },
            sort_keys=False,
        )
        header = f"# napari-cellseg model description; the weights are in {path.name}\n"
        _atomic_write(path.with_suffix(".yaml"), lambda f: f.write((header + text).encode()))
    return path


def _model_file_from_yaml(path: Path) -> Path:
    """The model file that the yaml ``path`` describes (its 'model'/'checkpoint' key or stem)."""
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CellsegError(f"cannot read the model description {path}: {exc}") from exc
    if isinstance(info, dict):
        for key in ("model", "checkpoint"):
            if isinstance(info.get(key), str):
                return path.parent / info[key]
    candidates = sorted(
        p
        for p in path.parent.glob(f"{path.stem}.*")
        if p.suffix not in YAML_SUFFIXES and p.is_file()
    )
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise CellsegError(
            f"{path} names no model file (no 'model' key) and the files beside it named "
            f"{path.stem}.* are: {found}. Add 'model: <file>' to the yaml or pass the model file"
        )
    return candidates[0]


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> Checkpoint:
    """Read a model file written by :func:`save_checkpoint`, or the yaml beside it.

    Uses ``torch.load(weights_only=True)``: files holding anything but tensors and plain
    values (a pickle crafted to run code, say) are refused before any of it runs.

    Raises
    ------
    CellsegError
        The file is missing, unreadable, not a napari-cellseg model file, unsafe, or from a
        newer napari-cellseg; the message names the file and what to do.
    """
    path = Path(path)
    if path.suffix in YAML_SUFFIXES and path.is_file():
        path = _model_file_from_yaml(path)
    if path.is_dir():
        raise CellsegError(f"{path} is a folder: pass the model file (.pt) inside it")
    if not path.is_file():
        raise CellsegError(
            f"model file {path} not found: check the path (a .pt file written "
            "by `cellseg train`, or the .yaml beside it)"
        )
    data = safe_load(
        path,
        map_location=map_location,
        pickle_fix="it is not a napari-cellseg model file but a python pickle",
        use="Use model files written by `cellseg train` from a source you trust",
    )
    return _checkpoint_from_dict(path, data)


def safe_load(path: Path, *, map_location: Any = "cpu", pickle_fix: str, use: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, no code run.

    Parameters
    ----------
    path
        An existing file.
    map_location
        As for ``torch.load``.
    pickle_fix, use
        The refusal of a pickle the safe loader does not accept says "refused to load
        <path>: <pickle_fix> that ... so none of it was read. <use>".

    Raises
    ------
    CellsegError
        The file is a pickle holding more than tensors and plain values, or not a PyTorch
        file at all (truncated, damaged, another format).
    """
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it may not read
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's restricted unpickler refused the file; its own text suggests loading it
        # unrestricted, which is exactly what must not happen with a file of unknown origin
        if not _starts_like_a_pickle(path):
            raise _not_a_model(path, _DAMAGED) from exc
        raise CellsegError(
            f"refused to load {path}: {pickle_fix} that the safe loader does not accept (a "
            f"pickle could run code when loaded), so none of it was read. {use}"
        ) from exc
    except Exception as exc:  # torch raises many types for files it cannot parse
        raise _not_a_model(path, _DAMAGED) from exc


_DAMAGED = "it is not a PyTorch file, or it is truncated or damaged"


def _starts_like_a_pickle(path: Path) -> bool:
    """True if the file starts as a pickle of protocol 2 or later (or a torch zip) does."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head[:1] == b"\x80" or head == b"PK"


def _not_a_model(path: Path, why: str) -> CellsegError:
    return CellsegError(
        f"{path} is not a napari-cellseg model file ({why}). Pass a model file written by "
        "`cellseg train` (or the .yaml beside it)"
    )


def _checkpoint_from_dict(path: Path, data: Any) -> Checkpoint:
    """Validate the loaded ``data`` and wrap it as a :class:`Checkpoint`."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if (
            isinstance(data, dict)
            and data
            and all(isinstance(v, torch.Tensor) for v in data.values())
        ):
            why = (
                "it holds bare weights, e.g. an Omnipose/Cellpose model, without the nchan, "
                "nclasses, dim and normalisation needed to use them"
            )
        else:
            why = f"it holds a {type(data).__name__} without the napari-cellseg header"
        raise _not_a_model(path, why)
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CellsegError(
            f"{path} was written by a newer napari-cellseg (format version {version}, this one "
            f"reads up to {FORMAT_VERSION}): upgrade napari-cellseg"
        )
    state_dict = data.get("state_dict")
    if not isinstance(data.get("spec"), dict) or not isinstance(state_dict, dict):
        raise _not_a_model(path, "its spec or weights are missing; the file may be damaged")
    try:
        spec = ModelSpec.from_dict(data["spec"])
    except (CellsegError, TypeError) as exc:
        raise CellsegError(f"{path}: {exc}") from exc
    return Checkpoint(
        path=path,
        spec=spec,
        state_dict=state_dict,
        meta=data.get("meta") or {},
        optimizer_state=data.get("optimizer"),
        scheduler_state=data.get("scheduler"),
        epoch=data.get("epoch"),
        rng=data.get("rng"),
        format_version=version,
    )


def load_model(
    path: str | os.PathLike, *, map_location: Any = "cpu"
) -> tuple[torch.nn.Module, Checkpoint]:
    """Rebuild the network stored in ``path`` (model file or yaml), in eval mode.

    Returns
    -------
    model, checkpoint
        The network with its weights loaded, on ``map_location``, and the file's contents.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build_model(ckpt.spec)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise CellsegError(
            f"the weights in {ckpt.path} do not fit the architecture it describes; the file "
            f"is damaged or was edited: {str(exc).splitlines()[0]}"
        ) from exc
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval(), ckpt


def export_model(
    src: str | os.PathLike, dst: str | os.PathLike, *, meta: dict[str, Any] | None = None
) -> Path:
    """Write a model file for inference only: weights, spec and meta, no training state.

    Used for the built-in models (a third of the size of a training checkpoint, which also holds
    the optimizer state for ``--resume``).

    Parameters
    ----------
    src
        A model file written by ``cellseg train`` (or the yaml beside it).
    dst
        The new model file; the yaml is written beside it.
    meta
        Entries added to (or replacing) the model's metadata, e.g. a description.

    Returns
    -------
    Path
        ``dst``.
    """
    model, ckpt = load_model(src)
    return save_checkpoint(dst, model, ckpt.spec, {**ckpt.meta, **(meta or {})}, epoch=ckpt.epoch)


def check_compatible(
    spec_old: ModelSpec, *, nchan: int, nclasses: int, dim: int, arch: str, source: str = ""
) -> None:
    """Refuse to fine-tune a model whose architecture, nchan, nclasses or dim differ.

    ``nclasses`` is compared only within a family that uses it (omni; the others ignore it).
    The network shape (``nbase``, blocks) comes from the model file and is not compared.

    Parameters
    ----------
    spec_old
        The spec stored in the pretrained model.
    nchan, nclasses, dim, arch
        The values of the new run.
    source
        The pretrained model's name or path, for the message.

    Raises
    ------
    CellsegError
        Naming every differing setting, its flag and the value to pass, e.g. "model X was
        trained with --nchan 2, you passed --nchan 1: pass --nchan 2 or train from scratch".
    """
    new = {"arch": arch, "nchan": nchan, "nclasses": nclasses, "dim": dim}
    diffs = [name for name in _FLAGS if getattr(spec_old, name) != new[name]]
    if "nclasses" in diffs and ("arch" in diffs or not get_family(arch).uses_nclasses):
        diffs.remove("nclasses")  # only a family that uses nclasses must keep it
    if not diffs:
        return
    old_flags = " and ".join(f"{_FLAGS[n]} {getattr(spec_old, n)}" for n in diffs)
    new_flags = " and ".join(f"{_FLAGS[n]} {new[n]}" for n in diffs)
    fix = " ".join(f"{_FLAGS[n]} {getattr(spec_old, n)}" for n in diffs)
    name = f"model {source}" if source else "the model"
    raise CellsegError(
        f"{name} was trained with {old_flags}, you passed {new_flags}: pass {fix} or train "
        "from scratch (without --pretrained_model)"
    )
