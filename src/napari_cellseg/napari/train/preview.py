"""The training preview layer: the current model's labels on the previewed image, as outlines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels

if TYPE_CHECKING:
    import napari

#: Metadata key of the preview layer (value: the name of the previewed image).
PREVIEW_KEY = "cellseg_training_preview"
#: Outline width of the preview labels (pixels): the ground truth stays visible under it.
PREVIEW_CONTOUR = 1


def show_preview(
    viewer: napari.viewer.Viewer, labels: np.ndarray, image: str, where: dict[str, Any]
) -> None:
    """Put ``labels`` into the preview layer of ``image``, made (with ``where``'s placement)
    the first time; later previews only replace its data."""
    for layer in viewer.layers:
        if isinstance(layer, Labels) and layer.metadata.get(PREVIEW_KEY) == image:
            fits = labels.dtype.itemsize <= layer.data.dtype.itemsize
            if layer.data.shape == labels.shape and fits:
                layer.data[...] = labels  # our own layer: in place is half the redraw cost
                layer.refresh()
            else:
                layer.data = labels
            return
    layer = viewer.add_labels(
        labels,
        name=f"training preview ({image})",
        metadata={PREVIEW_KEY: image},
        opacity=0.9,
        **where,
    )
    layer.contour = PREVIEW_CONTOUR
