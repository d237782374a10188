"""The CTC folder reader: sequences with tracking ground truth, TRA folders and results open as
images, labels (with their track table) and a Tracks layer; training folders still do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels, Tracks
from napari.plugins.io import read_data_with_plugins

from napari_cellseg.io.images import write_image, write_mask
from napari_cellseg.napari._reader import get_folder_reader, read_ctc_folder, read_folder
from napari_cellseg.napari.track import TrackWidget
from napari_cellseg.napari.track.result import TRACKS, TRACKS_LAYER
from napari_cellseg.track.ctc import Track, write_tracks
from napari_cellseg.track.folders import write_result

PLUGIN = "napari-cellseg"
#: Track 1 runs over frames 0-1 and divides into 2 and 3 at frame 2.
TRACK_TABLE = [Track(1, 0, 1, 0), Track(2, 2, 2, 1), Track(3, 2, 2, 1)]


def _labels() -> np.ndarray:
    labels = np.zeros((3, 24, 32), np.int32)
    labels[0, 8:14, 4:10] = 1
    labels[1, 8:14, 8:14] = 1
    labels[2, 4:9, 12:18] = 2
    labels[2, 13:18, 12:18] = 3
    return labels


def _ctc(root: Path, *, tra: bool = True, seg: bool = False) -> Path:
    """A tiny CTC dataset: ``01/tNNN.tif`` with ``01_GT/TRA`` (and/or ``01_GT/SEG``)."""
    labels = _labels()
    (root / "01").mkdir(parents=True)
    for t, frame in enumerate(labels):
        write_image(root / "01" / f"t{t:03d}.tif", (frame > 0).astype(np.uint16) * 1000 + 100)
    if tra:
        (root / "01_GT" / "TRA").mkdir(parents=True)
        for t, frame in enumerate(labels):
            write_mask(root / "01_GT" / "TRA" / f"man_track{t:03d}.tif", frame.astype(np.uint16))
        write_tracks(root / "01_GT" / "TRA" / "man_track.txt", TRACK_TABLE)
    if seg:
        (root / "01_GT" / "SEG").mkdir(parents=True)
        for t, frame in enumerate(labels):
            write_mask(root / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", frame.astype(np.uint16))
    return root


def _read(path: Path) -> list:
    layer_data, plugin = read_data_with_plugins([str(path)], plugin=PLUGIN, stack=False)
    assert plugin == PLUGIN
    return layer_data


@pytest.mark.parametrize("where", ["01", "01_GT/TRA"])
def test_a_tracking_ground_truth_opens_as_images_labels_and_tracks(
    plugins, tmp_path: Path, where: str
) -> None:
    path = _ctc(tmp_path) / where
    assert get_folder_reader(str(path)) is read_ctc_folder

    (images, image_meta, _), (labels, meta, _), (data, tracks_meta, kind) = _read(path)

    assert images.shape == (3, 24, 32) and image_meta["name"] == "01 images"
    np.testing.assert_array_equal(labels, _labels())
    assert meta["name"] == "01_GT tracked"
    assert meta["metadata"][TRACKS] == TRACK_TABLE
    assert meta["metadata"][TRACKS_LAYER] == tracks_meta["name"] == "01_GT tracks"
    assert kind == "tracks" and tracks_meta["graph"] == {2: [1], 3: [1]}
    assert sorted(set(data[:, 0].astype(int))) == [1, 2, 3]


def test_a_result_folder_opens_with_the_images_of_its_sequence(viewer, tmp_path: Path) -> None:
    root = _ctc(tmp_path, tra=False)
    write_result(root / "01_RES", _labels(), TRACK_TABLE)

    layers = viewer.open(root / "01_RES", plugin=PLUGIN)

    assert [type(layer) for layer in layers] == [Image, Labels, Tracks]
    labels = viewer.layers["01_RES tracked"]
    assert labels.metadata[TRACKS] == TRACK_TABLE
    assert viewer.layers["01_RES tracks"].graph == {2: [1], 3: [1]}
    assert TrackWidget(viewer).result_layer.name == "01_RES tracked"  # ready for corrections


def test_a_result_folder_alone_opens_without_images(plugins, tmp_path: Path) -> None:
    write_result(tmp_path / "res", _labels(), TRACK_TABLE)

    (labels, meta, kind), (_, _, tracks_kind) = _read(tmp_path / "res")

    assert kind == "labels" and tracks_kind == "tracks"
    assert meta["name"] == "res tracked"


def test_training_folders_still_open_as_training_folders(tmp_path: Path) -> None:
    root = _ctc(tmp_path / "segmentation", tra=False, seg=True)

    assert get_folder_reader(str(root)) is read_folder
    assert get_folder_reader(str(root / "01")) is read_folder  # no TRA: segmentation only
    assert get_folder_reader(str(_ctc(tmp_path / "both", seg=True))) is read_folder  # the root


def test_a_result_whose_table_disagrees_is_a_message_and_adds_nothing(
    plugins, tmp_path: Path, notes
) -> None:
    write_result(tmp_path / "res", _labels(), TRACK_TABLE)
    write_tracks(tmp_path / "res" / "res_track.txt", [Track(1, 0, 2, 0), *TRACK_TABLE[1:]])

    assert _read(tmp_path / "res") == []
    (message,) = notes.errors()
    assert str(tmp_path / "res") in message and "track 1" in message
