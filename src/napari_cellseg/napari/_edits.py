"""Undoable edits of napari Labels layers, and the links that go with them.

A user's labels change only through :func:`apply_frames`, which records each call as one entry
of the layer's undo history (``layer.undo()`` restores the array exactly), or go to a new layer.

napari's undo knows pixels, not the links in ``metadata["links"]``: an edit that changes the
links (a QC fix removing a linked fragment) records the pixels it changed, their values before
and after, and the links before and after, in ``metadata["links_history"]``.
:func:`current_links` then tells from the pixels which state the layer is in, so that undo and
redo bring the right links back; every reader of a layer's links (writer, widgets) asks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.errors import CellsegError

if TYPE_CHECKING:
    import napari.layers

Frame = tuple[int, ...]

#: Metadata key of the links recorded by :func:`apply_frames`.
LINKS_HISTORY = "links_history"


@dataclass
class _LinksEdit:
    """One edit that changed pixels and links: enough to tell whether it is undone."""

    indices: tuple[np.ndarray, ...]
    before: np.ndarray
    after: np.ndarray
    links_before: Any
    links_after: Any


@dataclass
class _LinksHistory:
    edits: list[_LinksEdit]
    synced: Any  # the links object last put in metadata["links"] by this module


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


def apply_frames(
    layer: napari.layers.Labels, frames: Mapping[Frame, np.ndarray], links: Any = None
) -> int:
    """Write new 2D label frames into ``layer`` as one undoable edit.

    Parameters
    ----------
    layer
        Labels layer whose data has shape ``(..., Y, X)``.
    frames
        Leading index of each frame (``()`` for a 2D layer) -> new ``(Y, X)`` labels for it.
    links
        The layer's links after the edit (as ``metadata["links"]`` holds them, ``set()`` for
        none), if the edit changes them; undo and redo of the edit then bring back the
        matching links (:func:`current_links`). None leaves the links as they are.

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
        if links is not None:
            metadata = layer.metadata
            metadata.pop(LINKS_HISTORY, None)  # the pixels cannot tell this change apart
            _set_links(metadata, links)
        return 0
    indices = tuple(np.concatenate(axis) for axis in zip(*index_parts))
    values = np.concatenate(value_parts)
    if links is not None:
        history = _history(layer.metadata)
        state = edits_applied(data, history.edits)
        links_before = _links_at(history, state) if state is not None else history.synced
        # an edit after an undo drops the undone ones, as napari drops their redo; after
        # unknown pixel changes the older edits can no longer be told apart
        history.edits = [] if state is None else history.edits[:state]
        history.edits.append(
            _LinksEdit(indices, np.asarray(data[indices]).copy(), values, links_before, links)
        )
    layer.data_setitem(indices, values)
    if links is not None:
        _set_links(layer.metadata, links)
    return int(indices[0].size)


def current_links(data: np.ndarray, metadata: dict[str, Any]) -> Any:
    """The links of a Labels layer as its pixels now stand, after any undo or redo.

    Parameters
    ----------
    data
        The layer's labels.
    metadata
        The layer's metadata; ``metadata["links"]`` is brought up to date.

    Returns
    -------
    set, dict or None
        ``metadata["links"]``: a set of pairs for a 2D layer, ``{frame: set}`` for a stack.
    """
    history = metadata.get(LINKS_HISTORY)
    links = metadata.get("links")
    if not isinstance(history, _LinksHistory) or not history.edits:
        return links
    if links is not history.synced:  # someone else set the links since (a links file read)
        del metadata[LINKS_HISTORY]
        return links
    state = edits_applied(data, history.edits)
    if state is None:  # painted over since: the pixels no longer tell, keep the links
        return links
    return _set_links(metadata, _links_at(history, state))


def edits_applied(data: np.ndarray, edits: Sequence[Any]) -> int | None:
    """How many of ``edits`` are applied now (undo and redo go in order), None if unknown.

    Each edit records ``indices`` and the pixel values ``before`` and ``after`` it. After
    ``k`` of them the pixels of edit ``k`` hold its values after, and those of edit ``k + 1``
    its values before (it was applied to exactly this state). The links history here and the
    track-table history of the Track widget both ask it.
    """

    def holds(edit: Any, values: np.ndarray) -> bool:
        return bool(np.array_equal(np.asarray(data[edit.indices]), values))

    for k in range(len(edits), -1, -1):
        if (k == 0 or holds(edits[k - 1], edits[k - 1].after)) and (
            k == len(edits) or holds(edits[k], edits[k].before)
        ):
            return k
    return None


def _links_at(history: _LinksHistory, state: int) -> Any:
    edits = history.edits
    if not edits:
        return history.synced
    return edits[state - 1].links_after if state else edits[0].links_before


def _history(metadata: dict[str, Any]) -> _LinksHistory:
    history = metadata.get(LINKS_HISTORY)
    if not isinstance(history, _LinksHistory) or metadata.get("links") is not history.synced:
        history = metadata[LINKS_HISTORY] = _LinksHistory([], metadata.get("links"))
    return history


def _set_links(metadata: dict[str, Any], links: Any) -> Any:
    if links is None:
        metadata.pop("links", None)
    else:
        metadata["links"] = links
    history = metadata.get(LINKS_HISTORY)
    if isinstance(history, _LinksHistory):
        history.synced = links
    return links
