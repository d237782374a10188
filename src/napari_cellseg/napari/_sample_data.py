"""Sample data: synthetic microscopy with exact labels (File > Open Sample > CellSeg), and a
synthetic time-lapse of dividing cells with its tracks."""

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


def dividing_cells() -> list[LayerData]:
    """A synthetic time-lapse of dividing nuclei, its labels (track ids) and its tracks.

    The movie is :func:`napari_cellseg.synth.timelapse`'s default (20 frames of 256 x 256);
    the Tracks layer joins each cell's centroids from frame to frame, and its graph each
    daughter to its mother.

    Returns
    -------
    list of tuple
        Image layer ``dividing_cells`` ``(T, Y, X)``, Labels layer ``dividing_cells_masks``
        and Tracks layer ``dividing_cells_tracks`` (rows ``[track id, t, y, x]``).
    """
    from napari_cellseg.track.table import tracks_layer_data

    movie = synth.timelapse(seed=0)
    data, graph = tracks_layer_data(movie.labels, movie.tracks)
    tracks = {"name": "dividing_cells_tracks", "graph": graph, "tail_length": 5}
    return [
        (movie.images, {"name": "dividing_cells", "colormap": "gray"}, "image"),
        labels_layer(movie.labels, "dividing_cells_masks"),
        (data, tracks, "tracks"),
    ]
