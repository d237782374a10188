"""Sample data: the synthetic time-lapse of dividing cells, as image, labels and tracks."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels, Tracks

from napari_cellseg import synth
from napari_cellseg.napari import _sample_data


def test_the_time_lapse_sample_is_a_movie_its_labels_and_their_tracks() -> None:
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind), tracks = (
        _sample_data.dividing_cells()
    )
    data, tracks_meta, tracks_kind = tracks

    assert (image_kind, labels_kind, tracks_kind) == ("image", "labels", "tracks")
    assert [image_meta["name"], labels_meta["name"], tracks_meta["name"]] == [
        "dividing_cells",
        "dividing_cells_masks",
        "dividing_cells_tracks",
    ]
    assert image.shape == labels.shape == (20, 256, 256)
    movie = synth.timelapse(seed=0)
    np.testing.assert_array_equal(labels, movie.labels)
    # One track point per cell and frame, at the cell's centroid.
    assert data.shape == (sum(len(np.unique(f)) - 1 for f in labels), 4)
    track_id, t, y, x = data[0]
    mask = labels[int(t)] == track_id
    np.testing.assert_allclose([y, x], np.argwhere(mask).mean(axis=0))
    # The graph joins each daughter to its mother, and there are divisions.
    graph = tracks_meta["graph"]
    assert len(graph) >= 10
    assert graph == {tr.id: [tr.parent] for tr in movie.tracks if tr.parent}
    for child, (parent,) in graph.items():
        assert data[data[:, 0] == parent, 1].max() + 1 == data[data[:, 0] == child, 1].min()


def test_the_time_lapse_opens_from_the_manifest_as_image_labels_and_tracks(viewer) -> None:
    layers = viewer.open_sample("napari-cellseg", "dividing_cells")

    assert [type(layer) for layer in layers] == [Image, Labels, Tracks]
    assert [layer.name for layer in viewer.layers] == [
        "dividing_cells",
        "dividing_cells_masks",
        "dividing_cells_tracks",
    ]
    assert viewer.layers["dividing_cells"].data.shape == (20, 256, 256)
    assert len(viewer.layers["dividing_cells_tracks"].graph) >= 10
