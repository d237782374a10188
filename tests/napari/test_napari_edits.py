"""Fixes reach a Labels layer as one undoable edit, and undo restores it exactly."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._edits import apply_frames


def _labels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 5, size=(3, 12, 10)).astype(np.int32)


def test_edit_of_a_2d_layer_is_one_undo_step_and_undo_restores_it() -> None:
    original = _labels()[0]
    layer = Labels(original.copy())
    new = original.copy()
    new[2:5, 3:7] = 9
    new[0, 0] = 0

    changed = apply_frames(layer, {(): new})

    assert changed == int(np.count_nonzero(new != original))
    np.testing.assert_array_equal(layer.data, new)
    layer.undo()
    np.testing.assert_array_equal(layer.data, original)
    layer.redo()
    np.testing.assert_array_equal(layer.data, new)


def test_edit_across_frames_of_a_stack_is_one_undo_step() -> None:
    original = _labels()
    layer = Labels(original.copy())
    frames = {(0,): np.zeros((12, 10), np.int32), (2,): np.full((12, 10), 7, np.int32)}

    apply_frames(layer, frames)

    assert (layer.data[0] == 0).all() and (layer.data[2] == 7).all()
    np.testing.assert_array_equal(layer.data[1], original[1])
    layer.undo()
    np.testing.assert_array_equal(layer.data, original)


def test_edit_without_change_adds_no_undo_step() -> None:
    original = _labels()[0]
    layer = Labels(original.copy())
    apply_frames(layer, {(): np.zeros_like(original)})

    assert apply_frames(layer, {(): np.zeros_like(original)}) == 0
    layer.undo()  # undoes the first edit, not an empty one
    np.testing.assert_array_equal(layer.data, original)


def test_label_that_does_not_fit_the_layer_dtype_is_refused_untouched() -> None:
    original = np.ones((4, 4), np.uint8)
    layer = Labels(original.copy(), name="small")
    new = original.astype(np.int32)
    new[0, 0] = 300

    with pytest.raises(CellsegError, match="'small'.*new layer"):
        apply_frames(layer, {(): new})
    np.testing.assert_array_equal(layer.data, original)


def test_undo_and_redo_of_overlapping_edits_bring_back_the_links_of_each_state() -> None:
    from napari_cellseg.napari._edits import current_links

    start = np.zeros((12, 10), np.int32)
    start[1:4, 1:4], start[6:9, 1:4], start[1:4, 6:9] = 1, 2, 3
    layer = Labels(start.copy(), metadata={"links": {(1, 2), (2, 3)}})
    first = start.copy()
    first[first == 3] = 0  # label 3 removed: link (2, 3) goes
    second = first.copy()
    second[0:5, 0:9] = 0  # overlaps the first edit's pixels; label 1 removed too
    painted = np.full((2, 2), 5, np.int32)
    states = [{(1, 2), (2, 3)}, {(1, 2)}, set()]

    apply_frames(layer, {(): first}, links=states[1])
    apply_frames(layer, {(): second}, links=states[2])
    assert current_links(layer.data, layer.metadata) == states[2]
    for expected in (states[1], states[0]):
        layer.undo()
        assert current_links(layer.data, layer.metadata) == expected
        assert layer.metadata["links"] == expected
    for expected in (states[1], states[2]):
        layer.redo()
        assert current_links(layer.data, layer.metadata) == expected
    layer.undo()  # back to the first edit, then a new edit: the undone one is gone
    layer.data_setitem((np.array([10, 10, 11, 11]), np.array([0, 1, 0, 1])), painted.ravel())
    assert current_links(layer.data, layer.metadata) == states[1]  # a paint elsewhere
    layer.undo()
    layer.undo()
    assert current_links(layer.data, layer.metadata) == states[0]


def test_links_set_by_someone_else_are_kept_after_an_edit_that_recorded_others() -> None:
    from napari_cellseg.napari._edits import current_links

    labels = np.zeros((6, 6), np.int32)
    labels[:2, :2], labels[3:, 3:] = 1, 2
    layer = Labels(labels.copy(), metadata={"links": {(1, 2)}})
    fixed = labels.copy()
    fixed[fixed == 2] = 0
    apply_frames(layer, {(): fixed}, links=set())
    layer.metadata["links"] = {(1, 7)}  # e.g. a links file opened onto the layer
    assert current_links(layer.data, layer.metadata) == {(1, 7)}
