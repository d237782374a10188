"""Undoable edits of napari Labels layers.

A user's labels change only through :func:`apply_frames`, which records each call as one entry
of the layer's undo history (``layer.undo()`` restores the array exactly), or go to a new layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from napari_cellseg.errors import CellsegError

if TYPE_CHECKING:
    import napari.layers

Frame = tuple[int, ...]


def check_editable(layer: napari.layers.Labels) -> None:
    """Raise a :class:`CellsegError` unless ``layer`` holds an in-memory, writable array.

    Parameters
    ----------
    layer
        The Labels layer about to be edited.
    """
    data = layer.data
    if layer.multiscale or not isinstance(data, np.ndarray) or not data.flags.writeable:
        raise CellsegError(
            f"Labels layer '{layer.name}' is not an in-memory array (it is multiscale, lazy or "
            "read-only), so it cannot be edited in place; choose 'a new layer' for the fixes."
        )


def apply_frames(layer: napari.layers.Labels, frames: Mapping[Frame, np.ndarray]) -> int:
    """Write new 2D label frames into ``layer`` as one undoable edit.

    Parameters
    ----------
    layer
        Labels layer whose data has shape ``(..., Y, X)``.
    frames
        Leading index of each frame (``()`` for a 2D layer) -> new ``(Y, X)`` labels for it.

    Returns
    -------
    int
        Number of pixels that changed (0 adds nothing to the undo history).

    Raises
    ------
    CellsegError
        If the layer cannot be edited in place, or a new label id does not fit its dtype.
    """
    check_editable(layer)
    data = layer.data
    index_parts: list[tuple[np.ndarray, ...]] = []
    value_parts: list[np.ndarray] = []
    for frame, new in frames.items():
        new = np.asarray(new)
        if new.shape != data.shape[len(frame) :]:
            raise ValueError(f"frame {frame} has shape {new.shape}, expected {data.shape[-2:]}")
        changed = np.nonzero(data[frame] != new)
        if changed[0].size == 0:
            continue
        values = new[changed]
        info = np.iinfo(data.dtype)
        if values.max() > info.max or values.min() < info.min:
            raise CellsegError(
                f"Labels layer '{layer.name}' stores {data.dtype} but the fix needs label "
                f"{int(values.max())}; choose 'a new layer' for the fixes, or convert the layer "
                "to a larger integer type."
            )
        lead = tuple(np.full(changed[0].size, i, dtype=np.intp) for i in frame)
        index_parts.append(lead + changed)
        value_parts.append(values.astype(data.dtype))
    if not index_parts:
        return 0
    indices = tuple(np.concatenate(axis) for axis in zip(*index_parts))
    layer.data_setitem(indices, np.concatenate(value_parts))
    return int(indices[0].size)
