"""Training: the loop shared by the CLI and the napari widget, and its samples.

>>> gen = train(config)                 # doctest: +SKIP
>>> for event in gen: print(event.loss)  # doctest: +SKIP

:mod:`.loop` holds the generator of progress events, :mod:`.samples` the training samples in
memory and the crops and targets made from them (torch-free, for data-loader workers).
"""

from napari_cellseg.train.loop import (
    Progress,
    TrainResult,
    checkpoint_meta,
    compute_loss,
    crops_per_epoch,
    default_model_path,
    model_spec,
    train,
    train_until,
)

__all__ = [
    "Progress",
    "TrainResult",
    "checkpoint_meta",
    "compute_loss",
    "crops_per_epoch",
    "default_model_path",
    "model_spec",
    "train",
    "train_until",
]
