"""Training: the loop shared by the CLI and the napari widget, and its parts.

>>> gen = train(config)                 # doctest: +SKIP
>>> for event in gen: print(event.loss)  # doctest: +SKIP

- :mod:`.loop`: :func:`train`, the generator of progress events, and :func:`train_until`;
- :mod:`.setup`: options, outputs, samples, model (fresh, fine-tuned or resumed), optimiser;
- :mod:`.trainer`: the optimiser step, the epoch, validation and saving;
- :mod:`.batches`: reproducible crops, epochs of batches, validation crops;
- :mod:`.logs`: TensorBoard and CSV;
- :mod:`.samples`: training samples in memory and the crops and targets made from them
  (torch-free, for data-loader workers and the napari widgets).

The names below load torch when first used, so that importing :mod:`.samples` does not.
"""

from __future__ import annotations

from napari_cellseg._lazy import lazy_exports

_EXPORTS = {
    "Progress": "trainer",
    "TrainResult": "loop",
    "checkpoint_meta": "setup",
    "compute_loss": "trainer",
    "crops_per_epoch": "batches",
    "default_model_path": "setup",
    "model_spec": "setup",
    "train": "loop",
    "train_until": "loop",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
