"""The Annotation QC widget in a real napari viewer: problems listed, shown, fixed, undone."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels, Shapes

from napari_cellseg.napari.qc_widget import TARGET_EDIT, TARGET_NEW, QCWidget

SIZE = 200


def _problem_labels() -> np.ndarray:
    """Known problems: label 2 split in two, a 1-px gap between 3 and 4, a fragment of 5."""
    labels = np.zeros((SIZE, SIZE), np.int32)
    labels[28:38, 5:15] = 1
    labels[5:15, 5:15] = 2
    labels[40:50, 5:15] = 2  # split_label
    labels[5:15, 30:40] = 3
    labels[5:15, 41:51] = 4  # gap: column 40
    labels[28:38, 28:38] = 5
    labels[55:57, 55:57] = 5  # fragment (4 px)
    return labels


@pytest.fixture
def qc(viewer) -> tuple[QCWidget, Labels]:
    """The QC widget docked from the manifest, with an image and its problem labels."""
    viewer.add_image(np.random.default_rng(0).random((SIZE, SIZE), np.float32), name="cells")
    labels = viewer.add_labels(_problem_labels(), name="cells_masks")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotation QC")
    assert isinstance(widget, QCWidget)
    widget.set_layers("cells_masks", "cells")
    widget.run()
    return widget, labels


def _docked(viewer) -> QCWidget:  # noqa: ANN001 - napari viewer proxy
    widget = QCWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotation QC")
    return widget


def _select(widget: QCWidget, check: str) -> int:
    index = next(i for i, row in enumerate(widget.rows) if row.problem.check == check)
    widget._table.selectRow(index)
    return index


def test_problems_are_listed_in_the_table_and_drawn_as_an_overlay(viewer, qc) -> None:
    widget, _ = qc

    checks = {row.problem.check for row in widget.rows}
    assert {"split_label", "gap", "fragment"} <= checks
    assert widget._table.rowCount() == len(widget.rows)
    overlay = viewer.layers["QC problems (cells_masks)"]
    assert isinstance(overlay, Shapes)
    assert overlay.nshapes == sum(row.problem.bbox is not None for row in widget.rows)
    assert viewer.layers.selection.active.name == "cells_masks"  # still ready for painting


def test_clicking_a_row_centres_and_zooms_on_the_problem(viewer, qc) -> None:
    widget, labels = qc
    camera = viewer.scene.camera
    zoom_before = camera.zoom

    row = widget.rows[_select(widget, "fragment")]

    y0, x0, y1, x1 = row.problem.bbox
    np.testing.assert_allclose(camera.center[-2:], ((y0 + y1) / 2, (x0 + x1) / 2))
    assert camera.zoom > zoom_before
    assert labels.selected_label == 5


def test_fix_is_one_undoable_edit_and_undo_restores_the_labels_exactly(viewer, qc) -> None:
    widget, labels = qc
    original = labels.data.copy()
    widget._target_combo.setCurrentText(TARGET_EDIT)

    _select(widget, "gap")
    widget._fix_button.click()

    assert not np.array_equal(labels.data, original)
    assert (labels.data[5:15, 40] > 0).all()  # the seam now belongs to a cell
    assert "gap" not in {row.problem.check for row in widget.rows}  # re-run after the fix
    assert len(viewer.layers) == 3  # image, labels, overlay: no new labels layer
    labels.undo()
    np.testing.assert_array_equal(labels.data, original)


def test_fix_into_a_new_layer_leaves_the_users_labels_untouched(viewer, qc) -> None:
    widget, labels = qc
    original = labels.data.copy()
    widget._target_combo.setCurrentText(TARGET_NEW)

    _select(widget, "split_label")
    widget._fix_button.click()

    np.testing.assert_array_equal(labels.data, original)
    fixed = viewer.layers["cells_masks fixed"]
    assert len(np.unique(fixed.data)) == len(np.unique(original)) + 1  # one part got a new id
    assert "split_label" not in {row.problem.check for row in widget.rows}


def test_problems_in_a_stack_are_found_per_frame_and_a_click_goes_to_the_frame(viewer) -> None:
    clean = np.zeros((SIZE, SIZE), np.int32)
    clean[20:30, 20:30] = 1
    stack = np.stack([clean, _problem_labels()])
    viewer.add_labels(stack, name="movie_masks")
    widget = _docked(viewer)
    widget.run()

    assert {row.frame for row in widget.rows} == {(1,)}
    assert not widget._table.isColumnHidden(3)
    _select(widget, "split_label")
    assert viewer.dims.current_step[0] == 1


def test_bad_labels_or_none_give_a_message_naming_the_layer_not_a_traceback(viewer, notes) -> None:
    widget = _docked(viewer)
    widget.run()
    assert "no Labels layer" in notes.warnings()[0]

    viewer.add_labels(-np.ones((16, 16), np.int32), name="bad")
    widget.run()

    (message,) = notes.errors()
    assert "'bad'" in message and ">= 0" in message
    assert widget.rows == []
    # a notification shows one line; the status line holds all of it, wrapped
    assert widget._status.text() == widget._status.toolTip() == message.split(": ", 1)[1]
    assert widget._status.wordWrap()


def test_cells_touching_the_border_are_listed_only_when_asked(viewer) -> None:
    labels = _problem_labels()
    labels[0:10, 100:110] = 7  # on the top edge
    viewer.add_labels(labels, name="cells_masks")
    widget = _docked(viewer)

    assert widget.border is False  # run_qc's default
    widget.run()
    assert "border" not in {row.problem.check for row in widget.rows}

    widget.border = True
    widget.run()
    border = [row.problem for row in widget.rows if row.problem.check == "border"]
    assert [problem.labels for problem in border] == [(7,)]
    assert border[0].severity == "info"


def test_links_to_labels_a_fix_removed_are_dropped_and_come_back_with_undo_and_on_save(
    viewer, tmp_path
) -> None:
    from napari_cellseg.io.links import read_links

    labels = _problem_labels()
    labels[100:102, 100:102] = 6  # a lone 4-px label linked to cell 1: a fragment of it
    layer = viewer.add_labels(labels, name="cells_masks", metadata={"links": {(1, 6), (3, 4)}})
    widget = _docked(viewer)
    widget.run()

    _select(widget, "fragment")
    widget._fix_button.click()

    assert not (layer.data == 6).any()
    assert layer.metadata["links"] == {(3, 4)}
    target = str(tmp_path / "cells_masks.tif")

    layer.undo()
    np.testing.assert_array_equal(layer.data, labels)
    layer.save(target, plugin="napari-cellseg")
    assert read_links(tmp_path / "cells_links.txt") == {(1, 6), (3, 4)}
    assert layer.metadata["links"] == {(1, 6), (3, 4)}

    layer.redo()
    layer.save(target, plugin="napari-cellseg")
    assert read_links(tmp_path / "cells_links.txt", labels=layer.data) == {(3, 4)}


def test_a_fix_in_one_frame_of_a_stack_is_undone_with_that_frames_links(viewer) -> None:
    frame = _problem_labels()
    frame[100:102, 100:102] = 6
    layer = viewer.add_labels(
        np.stack([frame, frame]), name="cells_masks", metadata={"links": {0: {(1, 6)}, 1: {(1, 6)}}}
    )
    widget = _docked(viewer)
    widget.run()
    _select(widget, "fragment")
    widget._fix_button.click()
    assert layer.metadata["links"] == {0: set(), 1: set()}
    layer.undo()
    widget.run()  # the checks read the links of the restored state
    assert layer.metadata["links"] == {0: {(1, 6)}, 1: {(1, 6)}}
