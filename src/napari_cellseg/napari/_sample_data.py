"""Sample data: synthetic microscopy with exact labels (File > Open Sample > CellSeg)."""

from __future__ import annotations

from napari_cellseg import synth
from napari_cellseg.napari._layers import LayerData, labels_layer


def bacteria() -> list[LayerData]:
    """A synthetic phase-contrast-like colony of rod-shaped bacteria and its labels.

    Returns
    -------
    list of tuple
        Image layer ``bacteria`` and Labels layer ``bacteria_masks``.
    """
    image, labels = synth.bacteria(seed=0)
    return [
        (image, {"name": "bacteria", "colormap": "gray"}, "image"),
        labels_layer(labels, "bacteria_masks"),
    ]


def nuclei() -> list[LayerData]:
    """A synthetic field of fluorescent nuclei and its labels.

    Returns
    -------
    list of tuple
        Image layer ``nuclei`` and Labels layer ``nuclei_masks``.
    """
    image, labels = synth.nuclei(seed=0)
    return [
        (image, {"name": "nuclei", "colormap": "gray"}, "image"),
        labels_layer(labels, "nuclei_masks"),
    ]
