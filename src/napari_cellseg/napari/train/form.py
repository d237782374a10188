"""The Train widget's option forms, generated from the fields of ``TrainConfig``.

Each field is an editor of :class:`napari_cellseg.napari._forms.Form` showing the field's
default, with its help text as tooltip. The main options come first (:data:`MAIN_OPTIONS`);
every other field except :data:`HIDDEN` is an advanced option.
"""

from __future__ import annotations

import dataclasses

from napari_cellseg.config import TrainConfig
from napari_cellseg.napari._forms import Form, option_field

#: Options shown on top, in this order.
MAIN_OPTIONS = ("architecture", "n_epochs", "learning_rate", "batch_size", "tyx", "device")
#: Options the widget sets itself (data, output, start model), CLI spellings of other options
#: (``RAdam``, ``use_gpu``) and command-line-only ones (resuming, data-loader processes,
#: torchrun processes).
HIDDEN = (
    "dir",
    "test_dir",
    "pretrained_model",
    "model",
    "resume",
    "args_load_path",
    "RAdam",
    "use_gpu",
    "all_channels",
    "dataloader",
    "num_workers",
    "ddp",
    "dataparallel",
)


def train_fields() -> dict[str, dataclasses.Field]:
    """The fields of :class:`TrainConfig` by name."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def options_form() -> Form:
    """The main options (family, epochs, learning rate, batch size, crop size, device)."""
    fields = train_fields()
    return Form(option_field(fields[name]) for name in MAIN_OPTIONS)


def advanced_form() -> Form:
    """Every other option the widget offers, in the order of :class:`TrainConfig`."""
    return Form(
        option_field(f)
        for name, f in train_fields().items()
        if name not in MAIN_OPTIONS and name not in HIDDEN
    )
