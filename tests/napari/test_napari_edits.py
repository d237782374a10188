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
