"""Options described once: a dataclass field carries its default, help, group and flags.

:class:`~napari_cellseg.config.TrainConfig` and
:class:`~napari_cellseg.predict.config.PredictConfig` are made of :func:`option` fields. From
them :func:`add_arguments` builds the command-line parser (Omnipose's and CLB's flag names as
aliases), :func:`from_mapping` reads a yaml mapping with any alias as a key, and the napari
widgets build their forms from the same fields.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from pathlib import Path
from typing import Any

import yaml

from napari_cellseg.errors import CellsegError


def option(default: Any, help: str, *flags: str, group: str, **extra: Any) -> Any:
    """A dataclass field carrying its CLI flags, help text and group.

    ``extra`` may hold ``choices`` (a tuple, or a function returning one when the parser is
    built, e.g. the registered families), ``type`` (the parser's converter) and ``nargs="?"``
    with ``const`` (the value of the flag given alone).
    """
    meta = {"help": help, "flags": flags, "group": group, **extra}
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


DEVICES = ("auto", "cpu", "cuda", "mps")


def device_option(group: str) -> Any:
    """``--device``, the same for training and prediction."""
    return option(
        "auto", "auto picks CUDA, then MPS, then CPU", "--device", group=group, choices=DEVICES
    )


def use_gpu_option(group: str) -> Any:
    """Omnipose's ``--use_gpu``."""
    return option(
        False, "Omnipose flag: use the GPU (same as --device auto)", "--use_gpu", group=group
    )


def amp_option(group: str, auto: str = "bf16 on CPUs that support it and on CUDA") -> Any:
    """``--amp``: mixed precision; ``auto`` says what ``--amp auto`` does."""
    return option(
        "auto",
        f"mixed precision: auto = {auto}",
        "--amp",
        group=group,
        choices=("auto", "on", "off"),
    )


def choices_of(f: dataclasses.Field) -> tuple[Any, ...] | None:
    """The allowed values of an option field (None: any)."""
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh copy for mutable defaults)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def none_or_str(text: str) -> str | None:
    """``"none"`` or an empty string -> None; anything else stays a string."""
    return None if str(text).lower() in ("none", "") else str(text)


def alias_map(cls: type) -> dict[str, str]:
    """Every accepted option name (field names and flags without dashes) -> field name."""
    out: dict[str, str] = {}
    for f in fields(cls):
        out[f.name] = f.name
        for flag in f.metadata.get("flags", ()):
            out[flag.lstrip("-")] = f.name
    return out


def from_mapping(cls: type, data: Mapping[str, Any], *, source: str, command: str) -> Any:
    """An instance of ``cls`` from a mapping whose keys may be any alias.

    Raises
    ------
    CellsegError
        For unknown keys, naming ``source`` and the ``command`` whose help lists the names.
    """
    names = alias_map(cls)
    kwargs: dict[str, Any] = {}
    unknown = []
    for key, value in data.items():
        name = names.get(str(key).lstrip("-"))
        if name is None:
            unknown.append(str(key))
        else:
            kwargs[name] = value
    if unknown:
        where = f" in {source}" if source else ""
        raise CellsegError(
            f"unknown option(s){where}: {', '.join(sorted(unknown))}; "
            f"see `{command} --help` for the option names"
        )
    return cls(**kwargs)


def read_mapping(path: str | Path, *, section: str) -> dict[str, Any]:
    """The options of a yaml (or json) file: the ``section`` mapping when there is one.

    Raises
    ------
    CellsegError
        When the file is missing, unreadable or not a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CellsegError(f"options file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CellsegError(f"cannot read options file {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get(section), dict):
        data = data[section]
    if not isinstance(data, dict):
        raise CellsegError(f"{path} must hold a mapping of option: value")
    return data


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    titles: Mapping[str, str],
    *,
    keep: Callable[[dataclasses.Field], bool] = lambda f: True,
) -> None:
    """Add one argument per field of ``cls`` (those ``keep`` accepts), grouped, every alias.

    Defaults are ``argparse.SUPPRESS`` so that only the options given on the command line
    override an options file; :func:`given` collects them.
    """
    groups = {name: parser.add_argument_group(title) for name, title in titles.items()}
    for f in fields(cls):
        if not keep(f):
            continue
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        default = default_of(f)
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = meta.get("type") or type_of(f.type)
            if choices_of(f):
                kwargs["choices"] = choices_of(f)
            if "nargs" in meta:
                kwargs.update(nargs=meta["nargs"], const=meta["const"])
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kwargs["help"] = (
            f"{meta['help']} (default: {shown!r})" if shown not in (None, False) else meta["help"]
        )
        groups[meta["group"]].add_argument(*meta["flags"], **kwargs)


def given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}


def type_of(annotation: Any) -> Any:
    """The command-line converter for a field annotated ``int``, ``float``, ``str | None``
    (``"none"`` means None) or ``str``."""
    text = str(annotation)
    if text.startswith("int"):
        return int
    if text.startswith("float"):
        return float
    if "str | None" in text:
        return none_or_str
    return str
