"""Linking per-frame detections into CTC tracks with LapTrack (no learning, no images).

:func:`link` takes a stack of instance labels whose ids mean nothing from one frame to the next
(a segmentation run frame by frame), links the cells' centroids with LapTrack's linear
assignment tracker (frame-to-frame links, then gap closing and divisions) and returns the CTC
pair: the stack relabelled with track ids and the :class:`~.ctc.Track` rows.

LapTrack is optional (``pip install napari-cellseg[track]``); it is imported when :func:`link`
runs, so importing this module needs neither LapTrack nor torch.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track

if TYPE_CHECKING:
    from laptrack import LapTrack

#: Automatic ``max_distance``: this many median equivalent diameters of the stack's cells.
DIAMETER_FACTOR = 1.0

#: LapTrack's costs of leaving a cell unlinked, set to the cutoff (see :func:`link`).
ALTERNATIVE_COSTS = (
    "track_start_cost",
    "track_end_cost",
    "segment_start_cost",
    "segment_end_cost",
    "no_splitting_cost",
)

#: A node of LapTrack's graph: ``(frame, index of the detection in that frame)``.
Node = tuple[int, int]


@dataclass(frozen=True)
class Detections:
    """The cells of one frame, in the order LapTrack receives them.

    Attributes
    ----------
    ids : numpy.ndarray
        ``(n,)`` label ids in the input frame, increasing.
    areas : numpy.ndarray
        ``(n,)`` pixel counts.
    centroids : numpy.ndarray
        ``(n, 2)`` float ``(y, x)`` centroids.
    boxes : list of tuple of slice
        ``n`` bounding boxes, to find each cell again without scanning the frame.
    """

    ids: np.ndarray
    areas: np.ndarray
    centroids: np.ndarray
    boxes: list[tuple[slice, slice]]


def frame_detections(frame: np.ndarray) -> Detections:
    """Ids, areas, centroids and bounding boxes of the labelled cells of one frame.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(Y, X)`` non-negative integer labels, 0 for background.

    Returns
    -------
    Detections
        One entry per id present in the frame. The work per cell is proportional to its
        bounding box, plus one pass over the frame (``scipy.ndimage.find_objects``).
    """
    top = int(frame.max()) if frame.size else 0
    if top == 0:
        return Detections(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 2)), [])
    if top <= 4 * frame.size and frame.dtype.itemsize <= 4:
        codes, ids = frame, None
    else:  # ids too large or too wide for find_objects' table: number them 1..n first
        ids, inverse = np.unique(frame, return_inverse=True)
        codes = inverse.reshape(frame.shape).astype(np.int32)
        ids = ids[1:] if ids[0] == 0 else ids
        codes = codes if frame.min() == 0 else codes + 1
    found, areas, centroids, boxes = [], [], [], []
    for code, box in enumerate(ndi.find_objects(codes), start=1):
        if box is None:
            continue
        mask = codes[box] == code
        area = int(mask.sum())
        ys = np.arange(box[0].start, box[0].stop)
        xs = np.arange(box[1].start, box[1].stop)
        found.append(code)
        areas.append(area)
        centroids.append((mask.sum(axis=1) @ ys / area, mask.sum(axis=0) @ xs / area))
        boxes.append(box)
    found_ids = np.asarray(found, np.int64) if ids is None else ids[np.asarray(found) - 1]
    return Detections(
        found_ids.astype(np.int64),
        np.asarray(areas, np.int64),
        np.asarray(centroids, np.float64).reshape(-1, 2),
        boxes,
    )


def automatic_max_distance(detections: list[Detections]) -> float:
    """The default linking distance: :data:`DIAMETER_FACTOR` median equivalent diameters.

    Parameters
    ----------
    detections : list of Detections
        The cells of every frame.

    Returns
    -------
    float
        Distance in pixels (1.0 when there are no cells).
    """
    areas = np.concatenate([d.areas for d in detections]) if detections else np.empty(0)
    if areas.size == 0:
        return 1.0
    diameter = 2.0 * np.sqrt(float(np.median(areas)) / np.pi)
    return max(DIAMETER_FACTOR * diameter, 1.0)


def _check_stack(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise CellsegError(
            f"labels: expected a (T, Y, X) stack of per-frame labels, got a {labels.ndim}D array "
            f"of shape {labels.shape}"
            + (" (a single frame: there is nothing to link)" if labels.ndim == 2 else "")
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise CellsegError(f"labels: expected integer instance labels, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise CellsegError("labels: negative label ids; use 0 for background and ids >= 1")
    return labels


def _laptrack(max_distance: float, divisions: bool, gap_frames: int) -> LapTrack:
    try:
        from laptrack import LapTrack
    except ImportError as error:
        raise CellsegError(
            "tracking with LapTrack needs the laptrack package: install napari-cellseg[track]"
        ) from error
    cutoff = float(max_distance) ** 2  # LapTrack's default metric is the squared distance
    return LapTrack(
        cutoff=cutoff,
        splitting_cutoff=cutoff if divisions else False,
        gap_closing_cutoff=cutoff if gap_frames > 0 else False,
        # LapTrack counts the frame difference: 1 is the next frame, 2 skips one frame
        gap_closing_max_frame_count=gap_frames + 1,
        # leaving a cell unlinked costs as much as the longest allowed link (see link())
        **dict.fromkeys(ALTERNATIVE_COSTS, cutoff),
    )


def _branches(nodes: list[Node], edges: list[tuple[Node, Node]]) -> tuple[list[list[Node]], dict]:
    """Cut LapTrack's graph into CTC branches: chains of consecutive frames.

    A chain stops at a division (a node with several successors), at a merge (several
    predecessors; LapTrack is run without merging, kept for safety) and across a closed gap
    (an edge that skips frames). Returns the chains, each in frame order, and for each chain
    whose first node has one predecessor, that predecessor (the parent link).
    """
    successors: dict[Node, list[Node]] = {n: [] for n in nodes}
    predecessors: dict[Node, list[Node]] = {n: [] for n in nodes}
    for a, b in edges:
        a, b = (a, b) if a[0] < b[0] else (b, a)
        successors[a].append(b)
        predecessors[b].append(a)

    def continues(a: Node, b: Node) -> bool:
        return len(successors[a]) == 1 and len(predecessors[b]) == 1 and b[0] == a[0] + 1

    chains: list[list[Node]] = []
    parent_node: dict[int, Node] = {}
    for node in sorted(nodes):
        preds = predecessors[node]
        if len(preds) == 1 and continues(preds[0], node):
            continue  # inside a chain
        chain = [node]
        while len(successors[chain[-1]]) == 1 and continues(chain[-1], successors[chain[-1]][0]):
            chain.append(successors[chain[-1]][0])
        if len(preds) == 1:
            parent_node[len(chains)] = preds[0]
        chains.append(chain)
    return chains, parent_node


def link(
    labels: np.ndarray,
    *,
    max_distance: float | None = None,
    divisions: bool = True,
    gap_frames: int = 1,
) -> tuple[np.ndarray, list[Track]]:
    """Link per-frame instance labels into Cell Tracking Challenge tracks with LapTrack.

    Each cell is reduced to its centroid; LapTrack links centroids of consecutive frames
    (squared Euclidean cost, links longer than ``max_distance`` are forbidden), then closes
    gaps of up to ``gap_frames`` missing frames and detects divisions (a cell of frame ``t``
    linked to two cells of frame ``t + 1``), each within the same distance. Leaving a cell
    unlinked (a track starting or ending, no division) costs as much as the longest allowed
    link, so any link within ``max_distance`` is made unless a shorter one competes for the
    same cell: ``max_distance`` is the one setting (LapTrack's automatic costs, a percentile of
    the candidate links, miss gaps and divisions where there are few candidates).

    The result follows the CTC rules: one id per branch between divisions; a daughter's parent
    is the mother's branch. A track id can not skip a frame, so a link across a closed gap
    ends the branch and starts a new one whose parent is the branch before the gap (as the CTC
    ground truth does). Ids are numbered from 1 by first frame, then by the first centroid's
    ``(y, x)``, so the numbering depends only on the detections.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(T, Y, X)`` integer instance labels, 0 for background; the ids of one frame need not
        match those of another. Empty frames are allowed.
    max_distance : float or None
        Longest link, in pixels (between centroids). ``None`` uses
        :data:`DIAMETER_FACTOR` times the median equivalent diameter ``2 * sqrt(area / pi)``
        of all cells of the stack (a cell rarely moves farther than its own size between two
        frames, and daughters lie about half a diameter from their mother's centroid).
    divisions : bool
        Detect divisions; when False a daughter starts a track without a parent.
    gap_frames : int
        Most consecutive frames a cell may be missing from and still be linked across
        (0 disables gap closing).

    Returns
    -------
    tracked : numpy.ndarray
        ``(T, Y, X)`` int32 labels whose ids are the track ids.
    tracks : list of Track
        One row per id, sorted by id.

    Raises
    ------
    CellsegError
        When ``labels`` is not a ``(T, Y, X)`` integer stack, a parameter is out of range, or
        LapTrack is not installed.
    """
    labels = _check_stack(labels)
    if max_distance is not None and not max_distance > 0:
        raise CellsegError(
            f"max_distance: must be a positive distance in pixels, got {max_distance}"
        )
    if gap_frames < 0:
        raise CellsegError(f"gap_frames: must be 0 or more frames, got {gap_frames}")
    detections = [frame_detections(frame) for frame in labels]
    tracked = np.zeros(labels.shape, dtype=np.int32)
    if sum(len(d.ids) for d in detections) == 0:
        return tracked, []
    if max_distance is None:
        max_distance = automatic_max_distance(detections)
    tracker = _laptrack(max_distance, divisions, gap_frames)
    graph = tracker.predict([d.centroids for d in detections])
    nodes = [(t, i) for t, d in enumerate(detections) for i in range(len(d.ids))]
    edges = [((int(a[0]), int(a[1])), (int(b[0]), int(b[1]))) for a, b in graph.edges]
    chains, parent_node = _branches(nodes, edges)

    def order(k: int) -> tuple[Hashable, ...]:
        frame, index = chains[k][0]
        return (frame, *detections[frame].centroids[index], k)

    new_id = {k: i + 1 for i, k in enumerate(sorted(range(len(chains)), key=order))}
    chain_of = {node: k for k, chain in enumerate(chains) for node in chain}
    tracks = []
    luts = [np.zeros(len(d.ids), dtype=np.int32) for d in detections]
    for k, chain in enumerate(chains):
        parent = new_id[chain_of[parent_node[k]]] if k in parent_node else 0
        tracks.append(Track(new_id[k], chain[0][0], chain[-1][0], parent))
        for frame, index in chain:
            luts[frame][index] = new_id[k]
    for t, (frame, d) in enumerate(zip(labels, detections)):
        for cell, box, track in zip(d.ids, d.boxes, luts[t]):
            tracked[t][box][frame[box] == cell] = track
    return tracked, sorted(tracks)
