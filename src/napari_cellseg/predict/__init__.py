"""Prediction: tiled inference and mask reconstruction for every model family.

>>> seg = Segmenter.from_file("model.pt")          # doctest: +SKIP
>>> result = seg.segment(image)                     # doctest: +SKIP
>>> result.labels                                   # doctest: +SKIP
"""

from napari_cellseg.predict.segmenter import (
    POSTPROCESS_DEFAULTS,
    Segmentation,
    Segmenter,
    score_dataset,
    segment_dataset,
)

__all__ = ["POSTPROCESS_DEFAULTS", "Segmentation", "Segmenter", "score_dataset", "segment_dataset"]
