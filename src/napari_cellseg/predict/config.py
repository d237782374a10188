"""Every prediction option once: :class:`PredictConfig`, the source of the ``cellseg predict``
flags, of the yaml ``cellseg predict --config`` reads, and of the Segment widget's fields.

The reconstruction parameters belong to the model's family
(:attr:`napari_cellseg.families.Family.Params`); :func:`add_predict_arguments` adds one flag per
parameter of every registered family, grouped by the families that have it, and
:meth:`PredictConfig.params_for` checks the given ones against the model's family.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_cellseg.errors import CellsegError
from napari_cellseg.families import family_names, get_family
from napari_cellseg.options import (
    DEVICES,
    add_arguments,
    amp_option,
    device_option,
    from_mapping,
    given,
    none_or_str,
    option,
    read_mapping,
    type_of,
    use_gpu_option,
)


def _optional_int(text: str) -> int | None:
    return None if str(text).lower() in ("none", "auto", "") else int(text)


@dataclass
class PredictConfig:
    """How to segment: the model, image scale, tiling, hardware and reconstruction.

    ``reconstruction`` holds only the parameters given (by name, e.g. ``min_size``); the
    model's family supplies the defaults of the others (:meth:`params_for`).
    """

    model: str | None = option(
        None,
        "model file, the yaml written beside it, or a built-in name",
        "--model",
        "--pretrained_model",
        group="model",
        type=none_or_str,
    )
    diameter: float = option(
        0.0,
        "mean cell diameter in the images, in pixels; images are resized to the diameter the "
        "model was trained for (0: no resizing)",
        "--diameter",
        group="model",
    )
    channel_axis: int | None = option(
        None,
        "axis of the channels in the image files (default: guessed per file)",
        "--channel_axis",
        group="model",
        type=_optional_int,
    )
    tile: int = option(
        768,
        "largest tile edge in pixels; a smaller image is one tile",
        "--tile",
        group="inference",
    )
    overlap: float = option(
        0.1, "fraction of a tile shared with its neighbour", "--overlap", group="inference"
    )
    batch_size: int | None = option(
        None,
        "tiles per forward pass (default: as many 256x256 tiles as 8, by tile size)",
        "--batch_size",
        group="inference",
        type=_optional_int,
    )
    device: str = device_option("inference")
    use_gpu: bool = use_gpu_option("inference")
    amp: str = amp_option("inference")
    reconstruction: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.tile < 16 or self.tile % 16:
            problems.append(f"--tile {self.tile} must be a multiple of 16, at least 16")
        if not 0 <= self.overlap < 1:
            problems.append(f"--overlap {self.overlap} must be in [0, 1)")
        if self.batch_size is not None and self.batch_size < 1:
            problems.append(f"--batch_size {self.batch_size} must be at least 1")
        if self.diameter < 0:
            problems.append(f"--diameter must be >= 0 pixels, not {self.diameter:g}")
        if self.device not in DEVICES:
            problems.append(f"--device {self.device} is not one of {', '.join(DEVICES)}")
        if problems:
            raise CellsegError("; ".join(problems))

    @property
    def run_device(self) -> str:
        """The device to ask for: ``--use_gpu`` means ``auto``."""
        return "auto" if self.use_gpu else self.device

    def params_for(self, arch: str) -> Any:
        """The reconstruction parameters for a model of family ``arch``.

        Raises
        ------
        CellsegError
            For a given parameter that family does not have, naming the flags it has.
        """
        family = get_family(arch)
        wrong = sorted(set(self.reconstruction) - set(_param_names(arch)))
        if wrong:
            raise CellsegError(
                f"{', '.join('--' + w for w in wrong)} do(es) not apply to {arch} models; "
                f"use {', '.join('--' + n for n in _param_names(arch))}"
            )
        return family.params(**self.reconstruction)

    def to_dict(self) -> dict[str, Any]:
        """Plain, yaml-safe dictionary: the options, then the given reconstruction values."""
        out = {f.name: getattr(self, f.name) for f in _option_fields()}
        return {**out, **self.reconstruction}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "") -> PredictConfig:
        """Options by any alias; the reconstruction parameters of any family by name.

        Raises
        ------
        CellsegError
            For keys that are neither, naming ``source``.
        """
        recon_names = set(reconstruction_parameters())
        recon = {k: v for k, v in data.items() if str(k).lstrip("-") in recon_names}
        rest = {k: v for k, v in data.items() if k not in recon}
        config = from_mapping(cls, rest, source=source, command="cellseg predict")
        config.reconstruction = {str(k).lstrip("-"): v for k, v in recon.items()}
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> PredictConfig:
        """Options from a yaml (or json) mapping; under ``predict`` or at the top level."""
        return cls.from_dict(read_mapping(path, section="predict"), source=str(path))


def is_options_file(path: str | Path) -> bool:
    """Whether a yaml holds prediction options rather than describe a model.

    A model's yaml (written beside it) has ``format`` and ``spec``, or names its weights with
    ``checkpoint``; anything else is read as options (and unknown keys are refused there).
    """
    try:
        data = read_mapping(path, section="predict")
    except CellsegError:
        return False  # not a mapping of options: let the model loader say what it is
    return not {"format", "spec", "checkpoint"} & set(map(str, data))


def _option_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(PredictConfig) if f.metadata.get("flags")]


def _param_names(arch: str) -> list[str]:
    return [f.name for f in dataclasses.fields(get_family(arch).Params)]


def reconstruction_parameters() -> dict[str, list[tuple[str, dataclasses.Field]]]:
    """Every reconstruction parameter name -> the (family, field) pairs that have it."""
    out: dict[str, list[tuple[str, dataclasses.Field]]] = {}
    for arch in family_names():
        for f in dataclasses.fields(get_family(arch).Params):
            out.setdefault(f.name, []).append((arch, f))
    return out


GROUP_TITLES = {"model": "model", "inference": "inference"}


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`PredictConfig` flags, then one flag per reconstruction parameter.

    A parameter several families share (``min_size``) is one flag, in a group titled with
    the families that have it. Defaults are ``argparse.SUPPRESS``, so that only the flags
    given override ``--config``; :func:`predict_config_from_args` merges them.
    """
    add_arguments(parser, PredictConfig, GROUP_TITLES, keep=lambda f: bool(f.metadata))
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for name, owners in reconstruction_parameters().items():
        archs = tuple(arch for arch, _ in owners)
        if archs not in groups:
            groups[archs] = parser.add_argument_group(f"reconstruction ({', '.join(archs)})")
        f = owners[0][1]
        defaults = sorted({repr(g.default) for _, g in owners})
        shown = "automatic" if f.default is None else " / ".join(defaults)
        groups[archs].add_argument(
            f"--{name}",
            dest=name,
            type=_param_type(f),
            default=argparse.SUPPRESS,
            help=f"{f.metadata.get('help', '')} (default: {shown})",
        )


def _param_type(f: dataclasses.Field) -> Any:
    """A parameter's converter; an automatic (None-default) integer also takes "auto"."""
    text = str(f.type)
    return _optional_int if text.startswith("int") and "None" in text else type_of(f.type)


def predict_config_from_args(
    args: argparse.Namespace, options_file: str | Path | None = None
) -> PredictConfig:
    """Merge an options yaml (if any) with the flags given, flags winning."""
    base: dict[str, Any] = {}
    if options_file:
        base = PredictConfig.from_yaml(options_file).to_dict()
    base.update(given(PredictConfig, args))
    base.update({n: getattr(args, n) for n in reconstruction_parameters() if hasattr(args, n)})
    base.pop("reconstruction", None)
    return PredictConfig.from_dict(base)
