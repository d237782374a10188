"""Layer-data tuples shared by the readers and the sample data (no napari import needed).

Links are kept in the Labels layer's ``metadata["links"]``: a ``set[tuple[int, int]]`` for a
2D layer, or ``{frame index: set}`` for a stack of samples. The writer saves them from there;
the Shapes layer drawn by :func:`links_layer` only shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from napari_cellseg.io.links import links_by_frame

LayerData = tuple[Any, dict[str, Any], str]
Links = set[tuple[int, int]]

#: Colour of the lines joining the centres of linked labels.
LINK_COLOR = "cyan"


def labels_layer(labels: np.ndarray, name: str, links: Any = None) -> LayerData:
    """Layer data for a Labels layer, with its links (if any) in the metadata.

    Parameters
    ----------
    labels
        Integer label matrix ``(Y, X)`` or a stack ``(N, Y, X)``.
    name
        Layer name.
    links
        Links of a 2D layer, or ``{frame index: links}`` for a stack; one set of pairs for a
        stack is split by frame. None for no links.

    Returns
    -------
    tuple
        ``(labels, meta, "labels")``.
    """
    meta: dict[str, Any] = {"name": name}
    if links:
        meta["metadata"] = {"links": as_layer_links(labels, links)}
    return labels, meta, "labels"


def as_layer_links(labels: np.ndarray, links: Any) -> Any:
    """Links as a Labels layer of ``labels``' dimensions keeps them in its metadata.

    Parameters
    ----------
    labels
        The layer's labels, ``(Y, X)`` or ``(N, Y, X)``.
    links
        One set of pairs, or ``{frame index: pairs}``.

    Returns
    -------
    set or dict
        A set for a 2D layer; per frame (:func:`~napari_cellseg.io.links.links_by_frame`) for
        a stack given one set of pairs; a mapping unchanged.
    """
    if labels.ndim == 3 and not isinstance(links, Mapping):
        return links_by_frame(labels, links)
    return links


def as_frame(key: int | tuple[int, ...]) -> tuple[int, ...]:
    """A key of per-frame links (an int for a stack of samples) as a frame index."""
    return key if isinstance(key, tuple) else (key,)


def frame_links(links: Any, frame: tuple[int, ...]) -> Links | None:
    """The links of one frame of a layer, from its links as :func:`as_layer_links` keeps them.

    Parameters
    ----------
    links
        A set of pairs (2D layer), ``{frame index: pairs}`` (stack) or None.
    frame
        The frame's leading index, ``()`` for a 2D layer.

    Returns
    -------
    set or None
        The frame's pairs, None when it has none recorded.
    """
    if isinstance(links, Mapping):
        return next((pairs for key, pairs in links.items() if as_frame(key) == frame), None)
    return links if not frame else None


def links_layer(labels: np.ndarray, links: Links | Mapping[int, Links], name: str) -> LayerData:
    """Layer data for a Shapes layer of lines joining the centres of linked labels.

    Parameters
    ----------
    labels
        The label matrix ``(Y, X)``, or a stack ``(N, Y, X)`` when ``links`` is a mapping.
    links
        Pairs of linked label ids, or ``{frame index: pairs}`` for a stack (one set of pairs
        for a stack is split by frame).
    name
        Layer name.

    Returns
    -------
    tuple
        ``(lines, meta, "shapes")``; ``lines`` is empty when no pair has both labels present.
    """
    links = as_layer_links(labels, links)
    per_frame = links.items() if isinstance(links, Mapping) else [(None, links)]
    lines = []
    for frame, pairs in per_frame:
        plane = labels if frame is None else labels[frame]
        lead = () if frame is None else (frame,)
        centres = _centres(plane, {label for pair in pairs for label in pair})
        for a, b in sorted(pairs):
            if a in centres and b in centres:
                lines.append(np.array([[*lead, *centres[a]], [*lead, *centres[b]]]))
    meta = {
        "name": name,
        "shape_type": "line",
        "edge_color": LINK_COLOR,
        "edge_width": max(1.0, min(labels.shape[-2:]) / 200),
        "opacity": 0.9,
    }
    return lines, meta, "shapes"


def _centres(labels: np.ndarray, ids: set[int]) -> dict[int, tuple[float, float]]:
    """Mean (y, x) of the pixels of each label in ``ids`` that is present in ``labels``."""
    if not ids:
        return {}
    ys, xs = np.nonzero(np.isin(labels, list(ids)))
    values = labels[ys, xs]
    size = int(values.max()) + 1 if values.size else 1
    counts = np.bincount(values, minlength=size)
    sum_y = np.bincount(values, weights=ys, minlength=size)
    sum_x = np.bincount(values, weights=xs, minlength=size)
    present = [i for i in ids if i < size and counts[i]]
    return {int(i): (sum_y[i] / counts[i], sum_x[i] / counts[i]) for i in present}
