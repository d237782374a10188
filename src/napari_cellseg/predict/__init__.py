"""Prediction: tiled inference and mask reconstruction for every model family.

>>> seg = Segmenter.from_file("model.pt")          # doctest: +SKIP
>>> result = seg.segment(image)                     # doctest: +SKIP
>>> result.labels                                   # doctest: +SKIP

:mod:`.segmenter` holds the model on one image, :mod:`.engine` the one loop that walks frames
through it for every consumer, and :mod:`.config` the options (:class:`PredictConfig`).
Importing the package or :mod:`.config` does not import torch (the napari widgets build their
forms from the options); the names below load :mod:`.segmenter` when first used.
"""

from __future__ import annotations

from napari_cellseg._lazy import lazy_exports

_EXPORTS = {
    "FrameResult": "engine",
    "TileProgress": "engine",
    "predict_frames": "engine",
    "reconstruct_frames": "engine",
    "results": "engine",
    "Segmentation": "segmenter",
    "Segmenter": "segmenter",
    "score_dataset": "segmenter",
    "segment_dataset": "segmenter",
    "PredictConfig": "config",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
