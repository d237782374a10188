"""The writer: Labels -> <name>_masks.tif (+ <name>_links.txt); bad input writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels

from napari_cellseg.io.images import read_mask
from napari_cellseg.io.links import read_links
from napari_cellseg.napari._writer import masks_path, write_masks


def _labels() -> np.ndarray:
    labels = np.zeros((20, 30), np.int32)
    labels[2:8, 3:9] = 1
    labels[2:8, 9:14] = 2
    labels[12:18, 20:28] = 3
    return labels


@pytest.mark.parametrize(
    ("requested", "written"),
    [
        ("cells.tif", "cells_masks.tif"),
        ("cells_masks.tif", "cells_masks.tif"),
        ("cells.TIFF", "cells_masks.tiff"),
        ("cells", "cells_masks.tif"),
        ("a.b.tif", "a.b_masks.tif"),
    ],
)
def test_masks_path_appends_masks_once(requested: str, written: str) -> None:
    assert masks_path(Path("/data") / requested) == Path("/data") / written


def test_labels_with_links_round_trip(tmp_path: Path) -> None:
    labels = _labels()
    meta = {"name": "cells", "metadata": {"links": {(1, 2)}}}

    written = write_masks(str(tmp_path / "cells.tif"), labels, meta)

    assert written == [str(tmp_path / "cells_masks.tif"), str(tmp_path / "cells_links.txt")]
    np.testing.assert_array_equal(read_mask(written[0]), labels)
    assert read_links(written[1], labels=labels) == {(1, 2)}


def test_labels_without_links_write_only_the_mask(tmp_path: Path, files_in) -> None:
    written = write_masks(str(tmp_path / "cells.tif"), _labels().astype(np.uint8), {})

    assert written == [str(tmp_path / "cells_masks.tif")]
    assert files_in(tmp_path) == {"cells_masks.tif"}


def test_float_labels_are_refused_with_a_message_and_nothing_is_written(
    tmp_path: Path, notes, files_in
) -> None:
    written = write_masks(str(tmp_path / "cells.tif"), _labels() + 0.5, {"name": "probs"})

    assert written == []
    assert files_in(tmp_path) == set()
    (message,) = notes.errors()
    assert "'probs'" in message and "integer" in message


def test_links_to_a_missing_label_are_refused_and_nothing_is_written(
    tmp_path: Path, notes, files_in
) -> None:
    meta = {"name": "cells", "metadata": {"links": {(1, 2), (3, 9)}}}

    assert write_masks(str(tmp_path / "cells.tif"), _labels(), meta) == []
    assert files_in(tmp_path) == set()
    (message,) = notes.errors()
    assert "'cells'" in message and "label 9" in message


def test_a_training_folder_stack_is_written_and_its_per_sample_links_reported_not_saved(
    tmp_path: Path, notes
) -> None:
    stack = np.stack([_labels(), _labels()])
    meta = {"name": "folder_masks", "metadata": {"links": {0: {(1, 2)}}, "samples": ["a", "b"]}}

    written = write_masks(str(tmp_path / "folder_masks.tif"), stack, meta)

    assert written == [str(tmp_path / "folder_masks.tif")]
    np.testing.assert_array_equal(read_mask(written[0]), stack)
    assert any("not saved" in message for message in notes.warnings())


def test_a_label_stack_is_written_with_the_links_of_all_its_frames(tmp_path: Path) -> None:
    stack = np.stack([_labels(), _labels()])
    meta = {"name": "cells", "metadata": {"links": {0: {(1, 2)}, 1: {(1, 3), (1, 2)}}}}

    written = write_masks(str(tmp_path / "cells.tif"), stack, meta)

    assert written == [str(tmp_path / "cells_masks.tif"), str(tmp_path / "cells_links.txt")]
    assert read_links(tmp_path / "cells_links.txt") == {(1, 2), (1, 3)}


def test_saving_labels_without_links_removes_the_old_links_file(tmp_path: Path, notes) -> None:
    (tmp_path / "cells_links.txt").write_text("1,2\n")

    written = write_masks(str(tmp_path / "cells.tif"), _labels(), {"name": "cells"})

    assert written == [str(tmp_path / "cells_masks.tif")]
    assert not (tmp_path / "cells_links.txt").exists()
    assert any("removed the old cells_links.txt" in message for _, message in notes)


def test_saving_a_labels_layer_with_this_plugin_writes_masks_and_links(
    plugins, tmp_path: Path
) -> None:
    layer = Labels(_labels(), name="cells_masks", metadata={"links": {(1, 2)}})

    written = layer.save(str(tmp_path / "cells.tif"), plugin="napari-cellseg")

    assert sorted(Path(p).name for p in written) == ["cells_links.txt", "cells_masks.tif"]
    np.testing.assert_array_equal(read_mask(tmp_path / "cells_masks.tif"), _labels())
