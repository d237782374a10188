"""Every training option once: default, help text, group and the flags users know.

``TrainConfig`` is the single source of training parameters. The ``cellseg train`` parser is
generated from its fields (:func:`add_config_arguments`), the yaml written beside a model is
:meth:`TrainConfig.to_dict`, ``--args_load_path`` reads one back (:meth:`TrainConfig.from_yaml`),
and the napari Train widget reads defaults and help from the same fields.

Omnipose's and CLB's flag names are accepted unchanged as aliases, e.g. ``--learning_rate`` and
``--lr``, ``--n_epochs`` and ``--epochs``, ``--batch_size`` and ``--batch``.
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
    add_arguments,
    amp_option,
    device_option,
    from_mapping,
    given,
    none_or_str,
    option,
    read_mapping,
    use_gpu_option,
)

OPTIMIZERS = ("adamw", "adam", "radam", "sgd")


def _parse_tyx(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tyx takes sizes like 224,224, not {text!r}") from None
    if not values or any(v <= 0 or v % 8 for v in values):
        raise argparse.ArgumentTypeError(
            f"--tyx {text}: each size must be a positive multiple of 8 (U-Net downsampling), "
            "e.g. 224,224 or 128,128"
        )
    return values


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, not {text!r}"
        ) from None


@dataclass
class TrainConfig:
    """All options of a training run (see ``cellseg train --help`` for each one's meaning)."""

    # --- data -------------------------------------------------------------------------------
    dir: str | None = option(
        None,
        "training data folder (Omnipose, DeLTA img/seg, CLB images/labels, or CTC layout); "
        "CLB style 'A+B' joins folders",
        "--dir",
        "--train_data",
        group="data",
    )
    test_dir: str | None = option(
        None,
        "validation data folder (validation loss each epoch)",
        "--test_dir",
        "--val_data",
        group="data",
    )
    convention: str = option(
        "auto",
        "folder convention",
        "--convention",
        group="data",
        choices=("auto", "omnipose", "delta", "clb", "ctc"),
    )
    img_filter: str = option("", "image name suffix, e.g. _img", "--img_filter", group="data")
    mask_filter: str = option("_masks", "mask name suffix", "--mask_filter", group="data")
    look_one_level_down: bool = option(
        False, "also read the subfolders of --dir", "--look_one_level_down", group="data"
    )
    links: bool = option(
        False, "use <base>_links.txt files (linked labels are one object)", "--links", group="data"
    )
    nchan: int = option(
        1, "number of image channels the model takes", "--nchan", "--channels", group="data"
    )
    channel_axis: int | None = option(
        None,
        "axis of the channels in the image files (default: first for CYX, last for RGB)",
        "--channel_axis",
        group="data",
    )
    all_channels: bool = option(
        False,
        "use all --nchan channels (the default here; accepted for Omnipose compatibility)",
        "--all_channels",
        group="data",
    )
    chan: int = option(
        0,
        "Cellpose-style channel to segment, 1-based (0: use --nchan channels)",
        "--chan",
        group="data",
    )
    chan2: int = option(
        0, "Cellpose-style optional nuclear channel, 1-based (0: none)", "--chan2", group="data"
    )
    diameter: float = option(
        0.0,
        "0: no rescaling; else rescale each image so that its cells have this mean "
        "diameter (Omnipose definition)",
        "--diameter",
        group="data",
    )
    blobs: str = option(
        "auto",
        "CLB label 1 ('blobs', regions too hard to annotate): ignore = excluded from "
        "the loss, object = an ordinary object; auto = ignore in CLB folders, object elsewhere",
        "--blobs",
        group="data",
        choices=("auto", "ignore", "object"),
    )
    # --- augmentation -----------------------------------------------------------------------
    tyx: tuple[int, ...] = option(
        (224, 224),
        "crop size, each a multiple of 8",
        "--tyx",
        group="augmentation",
        type=_parse_tyx,
    )
    augment_ops: str | None = option(
        None,
        "DeLTA operations dict (yaml/json) applied after cropping",
        "--augment_ops",
        group="augmentation",
    )
    augments: int = option(
        0, "CLB: augmented copies per sample and epoch", "--augments", group="augmentation"
    )
    trim_method: str | None = option(
        None,
        "CLB: bring whole images to --im_dim instead of random warped crops",
        "--trim_method",
        group="augmentation",
        choices=("resize", "padding", "reflect"),
    )
    im_dim: int = option(
        256, "CLB: network input size with --trim_method", "--im_dim", group="augmentation"
    )
    # --- model ------------------------------------------------------------------------------
    architecture: str = option(
        "omni", "model family", "--architecture", "--arch", group="model", choices=family_names
    )
    nclasses: int = option(
        2, "omni: 2 = flow + distance, 3 = + boundary", "--nclasses", group="model"
    )
    nbase: tuple[int, ...] | None = option(
        None,
        "channels per U-Net level, e.g. 32,64,128,256 (default: the model's)",
        "--nbase",
        group="model",
        type=_parse_ints,
    )
    dropout: float = option(0.0, "dropout rate", "--dropout", group="model")
    pretrained_model: str | None = option(
        None,
        "model file (or built-in name) to fine-tune; None trains from scratch",
        "--pretrained_model",
        group="model",
        type=none_or_str,
    )
    weight_map: str = option(
        "seg_weights",
        "unet: weight map when no wei/ folder is given",
        "--weight_map",
        group="model",
        choices=("seg_weights", "seg_weights_2D", "none"),
    )
    obj_weight: float = option(
        0.5, "dcan: weight of the object loss", "--obj_weight", group="model"
    )
    bnd_weight: float = option(
        0.5, "dcan: weight of the contour loss", "--bnd_weight", group="model"
    )
    track_shift: int = option(
        5,
        "track: +-pixels frame t's window is jittered against frame t-1's (drift)",
        "--track_shift",
        "--shift",
        group="augmentation",
    )
    dcan_final_act: str = option(
        "tanh",
        "dcan: final activation",
        "--dcan_final_act",
        group="model",
        choices=("sigmoid", "tanh"),
    )
    # --- optimisation -----------------------------------------------------------------------
    optimizer: str = option(
        "adamw", "optimizer", "--optimizer", group="optimisation", choices=OPTIMIZERS
    )
    RAdam: bool = option(
        False,
        "use RAdam (Omnipose flag; same as --optimizer radam)",
        "--RAdam",
        group="optimisation",
    )
    learning_rate: float = option(
        2e-3, "learning rate", "--learning_rate", "--lr", group="optimisation"
    )
    weight_decay: float = option(1e-5, "weight decay", "--weight_decay", group="optimisation")
    batch_size: int = option(8, "crops per step", "--batch_size", "--batch", group="optimisation")
    n_epochs: int = option(100, "epochs", "--n_epochs", "--epochs", group="optimisation")
    nimg_per_epoch: int = option(
        0,
        "crops per epoch (0: one per image, at least one batch)",
        "--nimg_per_epoch",
        group="optimisation",
    )
    warmup_epochs: int = option(
        5, "linear learning-rate warm-up (epochs)", "--warmup_epochs", group="optimisation"
    )
    seed: int = option(42, "random seed (bit-reproducible on CPU)", "--seed", group="optimisation")
    # --- hardware ---------------------------------------------------------------------------
    device: str = device_option("hardware")
    use_gpu: bool = use_gpu_option("hardware")
    amp: str = amp_option("hardware", auto="bf16 on CUDA, off on CPUs (on: bf16 there too)")
    dataloader: bool = option(
        False, "prepare batches in worker processes", "--dataloader", group="hardware"
    )
    num_workers: int = option(
        1, "worker processes with --dataloader", "--num_workers", group="hardware"
    )
    ddp: int = option(
        0,
        "train on K processes of this machine (DistributedDataParallel): runs `torchrun "
        "--nproc_per_node K` with these arguments; the global batch is K x --batch_size and "
        "--learning_rate is its rate (not rescaled); --ddp alone: one per GPU, else one per "
        "CPU core; 0: one process",
        "--ddp",
        group="hardware",
        nargs="?",
        const=-1,
    )
    dataparallel: bool = option(
        False,
        "Omnipose flag (DataParallel over the GPUs): runs as --ddp, one process per GPU",
        "--dataparallel",
        group="hardware",
    )
    # --- output -----------------------------------------------------------------------------
    model: str | None = option(
        None,
        "output model file (default: <dir>/models/cellseg_<arch>_<date>.pt)",
        "--model",
        "--save_path",
        group="output",
    )
    save_every: int = option(
        10, "save (overwrite) the model every N epochs", "--save_every", group="output"
    )
    save_each: bool = option(
        False, "keep one model file per save (<model>_epoch_N.pt)", "--save_each", group="output"
    )
    resume: str | None = option(
        None, "continue an interrupted run from this model file", "--resume", group="output"
    )
    tb_dir: str | None = option(
        None, "TensorBoard log folder (default: beside the model)", "--tb_dir", group="output"
    )
    csv_log: str | None = option(
        None, "CSV log file (default: <model>.csv)", "--csv_log", group="output"
    )
    args_load_path: str | None = option(
        None,
        "yaml file of options (CLB); command-line flags override it",
        "--args_load_path",
        group="output",
    )

    # ---------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        if isinstance(self.tyx, (list, str)):
            self.tyx = _parse_tyx(
                ",".join(map(str, self.tyx)) if isinstance(self.tyx, list) else self.tyx
            )
        if isinstance(self.nbase, list):
            self.nbase = tuple(self.nbase)

    def validate(self) -> TrainConfig:
        """Check that the options fit together and normalise aliases.

        Returns
        -------
        TrainConfig
            ``self``, with ``--RAdam``/``--use_gpu`` folded into ``optimizer``/``device``.

        Raises
        ------
        CellsegError
            When options contradict each other; the message names the flags.
        """
        if self.RAdam:
            if self.optimizer not in ("adamw", "radam"):
                raise CellsegError(
                    f"--RAdam contradicts --optimizer {self.optimizer}: pass only one of them"
                )
            self.optimizer = "radam"
        if self.use_gpu and self.device == "cpu":
            raise CellsegError("--use_gpu contradicts --device cpu: pass only one of them")
        problems = get_family(self.architecture).config_problems(self)
        if problems:
            raise CellsegError(problems[0])
        if self.chan < 0 or self.chan2 < 0:
            raise CellsegError("--chan and --chan2 are 1-based channel numbers (0 = not used)")
        if self.chan2 and not self.chan:
            raise CellsegError("--chan2 needs --chan (the channel to segment)")
        if self.chan:
            wanted = 2 if self.chan2 else 1
            if self.nchan not in (1, wanted):
                raise CellsegError(
                    f"--chan {self.chan}{' --chan2 ' + str(self.chan2) if self.chan2 else ''} "
                    f"selects {wanted} channel(s) but --nchan is {self.nchan}: drop --nchan"
                )
            self.nchan = wanted
        if self.trim_method and self.im_dim % 8:
            raise CellsegError(f"--im_dim {self.im_dim} must be a multiple of 8")
        if self.resume and self.pretrained_model:
            raise CellsegError(
                "--resume continues a run (same model, optimizer and epoch count); "
                "--pretrained_model starts a new run from weights: pass only one of them"
            )
        if self.ddp < -1:
            raise CellsegError(f"--ddp takes a number of processes (or nothing), not {self.ddp}")
        for name in ("batch_size", "n_epochs", "nchan"):
            if getattr(self, name) < 1:
                raise CellsegError(f"--{name} must be at least 1, not {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise CellsegError(f"--learning_rate must be positive, not {self.learning_rate}")
        if not 0 <= self.dropout < 1:
            raise CellsegError(f"--dropout must be in [0, 1), not {self.dropout}")
        return self

    @property
    def crop_shape(self) -> tuple[int, int]:
        """Network input size during training: ``--im_dim`` with ``--trim_method``, else tyx."""
        if self.trim_method:
            return (self.im_dim, self.im_dim)
        return (int(self.tyx[0]), int(self.tyx[-1]))

    def to_dict(self) -> dict[str, Any]:
        """Plain, yaml-safe dictionary of every option."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "") -> TrainConfig:
        """Build a config from a dictionary, accepting any alias as a key.

        Raises
        ------
        CellsegError
            For unknown keys, naming ``source``.
        """
        return from_mapping(cls, data, source=source, command="cellseg train")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read options from a yaml (or json) file written by a user or beside a model.

        A model's own yaml has the options under ``training``; a CLB-style flat mapping works too.
        """
        return cls.from_dict(read_mapping(path, section="training"), source=str(path))


GROUP_TITLES = {
    "data": "data (Omnipose --dir/--img_filter..., CLB --train_data/--val_data, DeLTA folders)",
    "augmentation": "augmentation",
    "model": "model",
    "optimisation": "optimisation",
    "hardware": "hardware",
    "output": "output and logs",
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one argument per ``TrainConfig`` field, grouped, with every alias.

    Defaults are ``argparse.SUPPRESS`` so that only options given on the command line override
    a ``--args_load_path`` file; :func:`config_from_args` fills in the rest.
    """
    add_arguments(parser, TrainConfig, GROUP_TITLES)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge ``--args_load_path`` (if any) with the flags given, flags winning, and validate."""
    flags = given(TrainConfig, args)
    base: dict[str, Any] = {}
    if flags.get("args_load_path"):
        base = TrainConfig.from_yaml(flags["args_load_path"]).to_dict()
    base.update(flags)
    return TrainConfig.from_dict(base).validate()
