"""Readers: which paths they claim, what they open, and bad input as a message, not a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.errors import MultipleReaderError
from napari.layers import Image, Labels, Shapes
from napari.plugins.io import read_data_with_plugins

from napari_cellseg.io.images import write_image, write_mask
from napari_cellseg.io.links import write_links
from napari_cellseg.napari._reader import (
    get_folder_reader,
    get_links_reader,
    get_reader,
    read_image_file,
    read_masks,
)

PLUGIN = "napari-cellseg"


def _labels(shape: tuple[int, int] = (32, 40)) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    labels[2:10, 3:12] = 1
    labels[2:10, 12:20] = 2
    labels[15:25, 20:35] = 3
    return labels


def _image(shape: tuple[int, ...] = (32, 40)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, size=shape).astype(np.uint16)


def _omnipose_folder(root: Path, n: int = 2) -> Path:
    root.mkdir()
    for i in range(n):
        write_image(root / f"s{i}.tif", _image())
        write_mask(root / f"s{i}_masks.tif", _labels())
    write_links(root / "s0_links.txt", {(1, 2)})
    return root


# --------------------------------------------------------------------------- claiming


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("cells.tif", read_image_file),
        ("cells.TIFF", read_image_file),
        ("cells_masks.tif", read_masks),
        ("cells_masks.tiff", read_masks),
        ("cells_masks.png", read_masks),
        ("cells.png", None),
        ("cells_masks.jpg", None),
        ("cells_links.txt", None),
        ("cells.npy", None),
    ],
)
def test_file_reader_claims_tiffs_and_masks_by_name_only(name: str, reader: object) -> None:
    assert get_reader(f"/nowhere/{name}") is reader


def test_file_readers_leave_stacks_of_files_to_others() -> None:
    assert get_reader(["/a/x.tif", "/a/y.tif"]) is None
    assert get_links_reader(["/a/x_links.txt"]) is None


def test_links_reader_claims_only_links_files() -> None:
    assert get_links_reader("/a/cells_links.txt") is not None
    assert get_links_reader("/a/notes.txt") is None


def test_folder_reader_claims_folders_but_not_zarr_stores_or_files(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "image.zarr").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / ".zgroup").write_text("{}")
    (tmp_path / "file.tif").write_bytes(b"")

    assert get_folder_reader(str(tmp_path / "plain")) is not None
    assert get_folder_reader(str(tmp_path / "image.zarr")) is None
    assert get_folder_reader(str(tmp_path / "store")) is None
    assert get_folder_reader(str(tmp_path / "file.tif")) is None


# --------------------------------------------------------------------------- reading


def test_grey_image_opens_as_one_layer_in_its_native_dtype(tmp_path: Path) -> None:
    write_image(tmp_path / "cells.tif", _image())

    ((data, meta, kind),) = read_image_file(str(tmp_path / "cells.tif"))

    assert kind == "image" and meta["name"] == "cells"
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data, _image())


def test_channels_first_image_opens_one_layer_per_channel(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "two.tif", _image((2, 32, 40)))

    ((data, meta, _),) = read_image_file(str(tmp_path / "two.tif"))

    assert data.shape == (2, 32, 40) and meta["channel_axis"] == 0
    assert meta["name"] == ["two [ch0]", "two [ch1]"]


def test_stack_of_frames_opens_as_one_layer(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "movie.tif", _image((7, 32, 40)))

    ((data, meta, _),) = read_image_file(str(tmp_path / "movie.tif"))

    assert data.shape == (7, 32, 40) and "channel_axis" not in meta


def test_mask_with_links_opens_as_labels_with_links_and_a_layer_of_linked_pairs(
    viewer, tmp_path: Path
) -> None:
    write_mask(tmp_path / "cells_masks.tif", _labels())
    write_links(tmp_path / "cells_links.txt", {(1, 2)})

    labels, links = viewer.open(tmp_path / "cells_masks.tif", plugin=PLUGIN)

    assert isinstance(labels, Labels) and labels.name == "cells_masks"
    assert np.issubdtype(labels.data.dtype, np.integer)
    np.testing.assert_array_equal(labels.data, _labels())
    assert labels.metadata["links"] == {(1, 2)}
    assert isinstance(links, Shapes) and links.name == "cells_links" and links.nshapes == 1


def test_links_file_attaches_to_the_open_labels_layer(viewer, tmp_path: Path) -> None:
    write_links(tmp_path / "cells_links.txt", {(1, 2)})
    labels = viewer.add_labels(_labels(), name="cells_masks")

    # plugin=None is what drag-and-drop and File > Open do; only this plugin claims *_links.txt
    (links,) = viewer.open(tmp_path / "cells_links.txt", plugin=None)

    assert labels.metadata["links"] == {(1, 2)}
    assert isinstance(links, Shapes) and links.nshapes == 1
    assert len(viewer.layers) == 2


def _stack_with_links(folder: Path) -> np.ndarray:
    """A 3-frame label stack whose ids are the stack's: 1 and 2 are linked pieces, in frames
    0 and 2 only (frame 1 lost label 2)."""
    stack = np.stack([_labels(), _labels(), _labels()])
    stack[1][stack[1] == 2] = 0
    write_mask(folder / "cells_masks.tif", stack)
    write_links(folder / "cells_links.txt", {(1, 2)})
    return stack


def test_a_mask_stack_with_links_opens_with_its_links_per_frame(viewer, tmp_path: Path) -> None:
    stack = _stack_with_links(tmp_path)

    labels, links = viewer.open(tmp_path / "cells_masks.tif", plugin=PLUGIN)

    np.testing.assert_array_equal(labels.data, stack)
    assert labels.metadata["links"] == {0: {(1, 2)}, 2: {(1, 2)}}
    assert isinstance(links, Shapes) and links.nshapes == 2
    assert sorted({int(line[0, 0]) for line in links.data}) == [0, 2]  # one line in each frame


def test_a_links_file_of_a_mask_stack_opens_it_from_disk_or_joins_its_layer(
    viewer, tmp_path: Path, notes
) -> None:
    stack = _stack_with_links(tmp_path)

    (labels, meta, _), (lines, _, _) = _read(tmp_path / "cells_links.txt")
    np.testing.assert_array_equal(labels, stack)
    assert meta["metadata"]["links"] == {0: {(1, 2)}, 2: {(1, 2)}} and len(lines) == 2

    layer = viewer.add_labels(stack, name="cells_masks")
    (shapes,) = viewer.open(tmp_path / "cells_links.txt", plugin=None)
    assert layer.metadata["links"] == {0: {(1, 2)}, 2: {(1, 2)}} and shapes.nshapes == 2
    assert not notes.errors()


def _read(path: Path) -> list:
    """Read with this plugin the way napari's File > Open does once it is chosen (no viewer)."""
    layer_data, plugin = read_data_with_plugins([str(path)], plugin=PLUGIN, stack=False)
    assert plugin == PLUGIN
    return layer_data


def test_links_file_opens_its_mask_from_disk_when_no_layer_has_it(plugins, tmp_path: Path) -> None:
    write_mask(tmp_path / "cells_masks.png", _labels())
    write_links(tmp_path / "cells_links.txt", {(2, 3)})

    (labels, meta, kind), (_, _, links_kind) = _read(tmp_path / "cells_links.txt")

    assert (kind, links_kind) == ("labels", "shapes")
    assert meta["name"] == "cells_masks" and meta["metadata"]["links"] == {(2, 3)}
    np.testing.assert_array_equal(labels, _labels())


def test_training_folder_opens_as_image_and_labels_stacks(plugins, tmp_path: Path) -> None:
    folder = _omnipose_folder(tmp_path / "train")

    (image, image_meta, _), (labels, labels_meta, _), (lines, _, _) = _read(folder)

    assert image.shape == (2, 32, 40) and image_meta["name"] == "train images"
    assert labels.shape == (2, 32, 40) and labels_meta["name"] == "train_masks"
    np.testing.assert_array_equal(labels[1], _labels())
    assert labels_meta["metadata"]["samples"] == ["s0", "s1"]
    assert labels_meta["metadata"]["links"] == {0: {(1, 2)}}
    assert len(lines) == 1


# --------------------------------------------------------------------------- bad input


def _truncated_tiff(folder: Path) -> Path:
    tifffile.imwrite(folder / "cut.tif", _image((64, 80)))
    data = (folder / "cut.tif").read_bytes()
    (folder / "cut.tif").write_bytes(data[: len(data) // 2])
    return folder / "cut.tif"


def _random_bytes(folder: Path) -> Path:
    (folder / "noise.tif").write_bytes(np.random.default_rng(1).bytes(3000))
    return folder / "noise.tif"


def _float_mask(folder: Path) -> Path:
    tifffile.imwrite(folder / "probs_masks.tif", np.linspace(0, 1, 32 * 40).reshape(32, 40))
    return folder / "probs_masks.tif"


def _links_to_missing_label(folder: Path) -> Path:
    write_mask(folder / "cells_masks.tif", _labels())
    (folder / "cells_links.txt").write_text("1,2\n3,9\n")
    return folder / "cells_links.txt"


def _empty_folder(folder: Path) -> Path:
    (folder / "empty").mkdir()
    return folder / "empty"


def _mismatched_shapes(folder: Path) -> Path:
    root = folder / "mismatch"
    root.mkdir()
    write_image(root / "a.tif", _image((32, 40)))
    write_mask(root / "a_masks.tif", _labels((30, 40)))
    return root


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_truncated_tiff, "damaged"),
        (_random_bytes, "not a TIFF"),
        (_float_mask, "integer label matrix"),
        (_links_to_missing_label, "label 9"),
        (_empty_folder, "empty"),
        (_mismatched_shapes, "size differs"),
    ],
    ids=lambda v: getattr(v, "__name__", v).strip("_") if callable(v) else None,
)
def test_bad_input_gives_a_message_naming_the_file_adds_nothing_and_writes_nothing(
    plugins, tmp_path: Path, notes, files_in, make, expected: str
) -> None:
    path = make(tmp_path)
    before = files_in(tmp_path)

    assert _read(path) == []
    (message,) = notes.errors()
    assert str(path) in message and expected in message
    assert files_in(tmp_path) == before


def test_bad_input_in_a_viewer_adds_no_layer_and_raises_nothing(
    viewer, tmp_path: Path, notes
) -> None:
    assert viewer.open(_float_mask(tmp_path), plugin=PLUGIN) == []
    assert len(viewer.layers) == 0 and len(notes.errors()) == 1


def test_mask_whose_links_are_bad_still_opens_and_says_why_links_were_left_out(
    viewer, tmp_path: Path, notes
) -> None:
    _links_to_missing_label(tmp_path)

    (labels,) = viewer.open(tmp_path / "cells_masks.tif", plugin=PLUGIN)

    assert "links" not in labels.metadata
    (message,) = notes.warnings()
    assert "cells_links.txt" in message and "label 9" in message


# --------------------------------------------------------------------------- plain open


def test_open_without_a_plugin_asks_for_tiffs_and_folders_and_default_open_uses_napari(
    viewer, tmp_path: Path
) -> None:
    """``plugin=None`` is what drag-and-drop does: napari reads tiffs and folders too, so the
    GUI shows a reader dialog (with "remember"); ``viewer.open`` defaults to napari's own
    reader, which gives a mask as an Image layer."""
    write_mask(tmp_path / "cells_masks.tif", _labels())
    write_image(tmp_path / "cells.tif", _image())

    for path in (tmp_path / "cells_masks.tif", tmp_path / "cells.tif", tmp_path):
        with pytest.raises(MultipleReaderError):
            viewer.open(path, plugin=None)
    (layer,) = viewer.open(tmp_path / "cells_masks.tif")
    assert isinstance(layer, Image)
