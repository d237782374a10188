"""A tracking result in napari: a Labels layer whose ids are track ids, its table, its Tracks.

The track table (:class:`~napari_cellseg.track.ctc.Track` rows) lives in the Labels layer's
``metadata["tracks"]``; ``metadata["tracks_layer"]`` names the Tracks layer that draws it.

A correction changes the labels through :func:`apply_result`: one undoable edit
(:func:`~napari_cellseg.napari._edits.apply_frames`) whose changed pixels, their values before
and after, and the tables before and after are recorded in ``metadata["tracks_history"]``.
napari's undo knows pixels only; :func:`current_tracks` tells from the pixels which of the
recorded states the layer is in, so that after undo or redo the table follows the pixels.
Pixels changed otherwise (painting) leave no known state: the table is then recomputed from
the pixels (first and last frame of each id) with the parents of the last known table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._edits import apply_frames, check_editable, edits_applied
from napari_cellseg.track.ctc import Track, check_tracks, tracks_from_labels
from napari_cellseg.track.table import tracks_layer_data

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

#: Metadata keys of a result's Labels layer: the table, its Tracks layer, the edit history.
TRACKS, TRACKS_LAYER, HISTORY = "tracks", "tracks_layer", "tracks_history"


@dataclass
class _Edit:
    """One correction: enough to tell from the pixels whether it is applied."""

    indices: tuple[np.ndarray, ...]
    before: np.ndarray
    after: np.ndarray
    tracks_before: list[Track]
    tracks_after: list[Track]


@dataclass
class _History:
    edits: list[_Edit]
    synced: Any  # the table last put in metadata["tracks"] by this module


def is_result(layer: Any) -> bool:
    """Whether ``layer`` is a Labels stack holding a track table."""
    from napari.layers import Labels

    return isinstance(layer, Labels) and layer.ndim == 3 and TRACKS in layer.metadata


def current_tracks(layer: napari.layers.Labels, *, recompute: bool = True) -> list[Track]:
    """The track table of a result layer as its pixels now stand (after any undo or redo).

    Parameters
    ----------
    layer
        A result layer (:func:`is_result`); ``metadata["tracks"]`` is brought up to date.
    recompute
        Check the table against the pixels and, if they were painted since, recompute it
        from them (:func:`recomputed`); False skips that (cheap, for display updates).

    Returns
    -------
    list of Track
        The table.

    Raises
    ------
    CellsegError
        If the layer holds no table, or painted labels no longer make one (an id with a gap).
    """
    metadata = layer.metadata
    tracks = metadata.get(TRACKS)
    if tracks is None:
        raise CellsegError(f"Labels layer '{layer.name}' holds no track table; track it first")
    history = metadata.get(HISTORY)
    if isinstance(history, _History):
        if tracks is not history.synced:  # someone else set the table: the history is stale
            del metadata[HISTORY]
        elif history.edits:
            state = edits_applied(np.asarray(layer.data), history.edits)
            if state is not None:
                tracks = _set_tracks(metadata, _tracks_at(history, state))
    if not recompute:
        return tracks
    data = np.asarray(layer.data)
    try:
        check_tracks(data, tracks, f"Labels layer '{layer.name}'")
    except CellsegError:  # painted since: the pixels say where each track is
        tracks = _set_tracks(metadata, recomputed(data, tracks, layer.name))
    return tracks


def recomputed(labels: np.ndarray, tracks: Sequence[Track], source: str) -> list[Track]:
    """The table of ``labels`` (first and last frame of each id), keeping the parents of
    ``tracks`` that still make sense (the parent exists and ends before its child begins).

    Raises
    ------
    CellsegError
        If an id is missing from a frame between its first and last, naming ``source``.
    """
    try:
        plain = tracks_from_labels(labels)
    except CellsegError as err:
        raise CellsegError(f"Labels layer '{source}': {err}") from None
    spans = {row.id: row for row in plain}
    parents = {
        row.id: row.parent
        for row in tracks
        if row.parent and row.id in spans and row.parent in spans
        if spans[row.parent].end < spans[row.id].begin
    }
    return [Track(r.id, r.begin, r.end, parents.get(r.id, 0)) for r in plain]


def apply_result(
    layer: napari.layers.Labels,
    labels: np.ndarray,
    tracks: list[Track],
    before: list[Track],
) -> int:
    """Write a corrected result into ``layer`` as one undoable edit, with its table.

    Parameters
    ----------
    layer
        The result layer.
    labels
        The corrected stack (same shape).
    tracks
        Its table.
    before
        The layer's table before the correction (:func:`current_tracks`), brought back by undo.

    Returns
    -------
    int
        Pixels changed (0: nothing was recorded; the table is set all the same).

    Raises
    ------
    CellsegError
        If the layer cannot be edited in place or a new id does not fit its dtype.
    """
    check_editable(layer)
    data = layer.data
    changed = np.nonzero(data != labels)
    if changed[0].size == 0:
        _set_tracks(layer.metadata, tracks)
        return 0
    frames = {(int(t),): labels[t] for t in np.unique(changed[0])}
    old = np.asarray(data[changed]).copy()
    history = _history(layer.metadata)
    state = edits_applied(data, history.edits)
    # a correction after an undo drops the undone ones, as napari drops their redo
    history.edits = [] if state is None else history.edits[:state]
    apply_frames(layer, frames)
    new = np.asarray(data[changed]).copy()
    history.edits.append(_Edit(changed, old, new, list(before), tracks))
    _set_tracks(layer.metadata, tracks)
    return int(changed[0].size)


def show_tracks(
    viewer: napari.viewer.Viewer, layer: napari.layers.Labels, tracks: Sequence[Track]
) -> napari.layers.Tracks | None:
    """Draw a result's tracks: update its Tracks layer, or add one ``"<name> tracks"``.

    Parameters
    ----------
    viewer
        The viewer.
    layer
        The result layer (``metadata["tracks_layer"]`` names its Tracks layer).
    tracks
        Its table.

    Returns
    -------
    napari.layers.Tracks or None
        The Tracks layer (None when the labels hold no cell).
    """
    from napari.layers import Tracks

    data, graph = tracks_layer_data(np.asarray(layer.data), tracks)
    name = layer.metadata.get(TRACKS_LAYER)
    shown = viewer.layers[name] if name in viewer.layers else None
    if not isinstance(shown, Tracks):
        if not len(data):
            return None
        base = layer.name.removesuffix(" tracked")
        shown = viewer.add_tracks(
            data,
            graph=graph,
            name=f"{base} tracks",
            scale=layer.scale,
            translate=layer.translate,
            tail_length=10,
        )
        layer.metadata[TRACKS_LAYER] = shown.name
        return shown
    if len(data):
        shown.data = data  # resets the graph, which must come after
        shown.graph = graph
    return shown


def _tracks_at(history: _History, state: int) -> list[Track]:
    edits = history.edits
    return edits[state - 1].tracks_after if state else edits[0].tracks_before


def _history(metadata: dict[str, Any]) -> _History:
    history = metadata.get(HISTORY)
    if not isinstance(history, _History) or metadata.get(TRACKS) is not history.synced:
        history = metadata[HISTORY] = _History([], metadata.get(TRACKS))
    return history


def _set_tracks(metadata: dict[str, Any], tracks: list[Track]) -> list[Track]:
    metadata[TRACKS] = tracks
    history = metadata.get(HISTORY)
    if isinstance(history, _History):
        history.synced = tracks
    return tracks
