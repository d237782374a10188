"""What the Train widget hands to its worker: copies of the chosen layers, checked first.

Runs on the main thread (it reads layers). :func:`check_pairs` is the QC gate: every frame of
the chosen labels is checked with :func:`napari_cellseg.qc.run_qc`, split as
:func:`copy_pairs` will split it, so that QC never passes a pair that training then refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family
from napari_cellseg.napari._edits import current_links
from napari_cellseg.napari._frames import layer_frames
from napari_cellseg.napari._layers import frame_links
from napari_cellseg.napari.train.pairs import Pair
from napari_cellseg.qc import run_qc


@dataclass
class TrainData:
    """Copies of the layer data (or a folder) for one training run; no layer references.

    Attributes
    ----------
    images, labels, names, links
        Training frames: raw image frames (``(Y, X)``, ``(Y, X, C)`` or ``(C, Y, X)``), label
        frames, sample names and links, as
        :func:`napari_cellseg.train.samples.make_items` takes them.
    val_images, val_labels, val_names, val_links
        The same for validation.
    tracks, val_tracks
        For a tracking family: each pair is one whole time-lapse (not split in frames) and
        this is its track table (the ``tracks`` of a tracked Labels layer), or None.
    """

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    links: list[Any] = field(default_factory=list)
    val_images: list[np.ndarray] = field(default_factory=list)
    val_labels: list[np.ndarray] = field(default_factory=list)
    val_names: list[str] = field(default_factory=list)
    val_links: list[Any] = field(default_factory=list)
    tracks: list[Any] = field(default_factory=list)
    val_tracks: list[Any] = field(default_factory=list)


@dataclass
class Findings:
    """The QC gate's findings on the chosen pairs.

    Attributes
    ----------
    blocking, warnings
        Messages naming the layer (and frame) of each problem.
    focus
        The pair to open the QC widget on: the first with a blocking problem, else the first
        with a warning, else the first pair.
    """

    blocking: list[str]
    warnings: list[str]
    focus: tuple[str, str | None]


def frames_problem(pair: Pair, image: Any, labels_shape: tuple[int, ...], nchan: int) -> str | None:
    """Why the labels' frames do not match the image layer's, as training splits them."""
    dummy = np.broadcast_to(np.uint8(0), image.data.shape)  # the shape only, no copy
    frames, lead = layer_frames(dummy, bool(image.rgb), nchan, source=pair.image)
    yx = frames[0].spatial_shape
    if tuple(labels_shape) == (*lead, *yx):
        return None
    return (
        f"'{pair.labels}' has shape {tuple(labels_shape)} but '{pair.image}' holds "
        f"{len(frames)} frame(s) of {yx[0]}x{yx[1]} for a {nchan}-channel model; each image "
        f"frame needs a labels frame of its size (labels of shape {(*lead, *yx)})"
    )


def check_pairs(layers: Any, pairs: list[Pair], nchan: int) -> Findings:
    """Run the QC checks on every frame of the chosen labels (``layers``: the viewer's)."""
    blocking: list[str] = []
    warnings: list[str] = []
    focus: dict[str, tuple[str, str | None]] = {}
    for pair in pairs:
        labels = layers[pair.labels]
        image = layers[pair.image]
        mismatch = frames_problem(pair, image, labels.data.shape, nchan)
        if mismatch:
            blocking.append(mismatch)
            focus.setdefault("blocking", (pair.labels, pair.image))
            continue
        shape = image.data.shape[:-1] if image.rgb else image.data.shape
        links = current_links(labels.data, labels.metadata)
        for frame in np.ndindex(*labels.data.shape[:-2]):
            where = f"'{pair.labels}'" + (f" frame {frame}" if frame else "")
            report = run_qc(
                np.asarray(labels.data[frame]),
                tuple(shape[-2:]),
                frame_links(links, frame),
                source=pair.labels,
            )
            for problem in report.problems:
                found = {"blocking": blocking, "warning": warnings}.get(problem.severity)
                if found is not None:
                    found.append(f"{where}: {problem.message}")
                    focus.setdefault(problem.severity, (pair.labels, pair.image))
    first = focus.get("blocking") or focus.get("warning") or (pairs[0].labels, pairs[0].image)
    return Findings(blocking, warnings, first)


def copy_pairs(layers: Any, pairs: list[Pair], config: TrainConfig) -> TrainData:
    """Copy the layers of the chosen pairs into frames (every stack frame a sample).

    Raises
    ------
    CellsegError
        When a pair's labels do not have one frame per image frame.
    """
    data = TrainData()
    tracking = get_family(config.architecture).tracks
    for pair in pairs:
        image = layers[pair.image]
        labels = layers[pair.labels]
        label_data = np.array(labels.data)
        if tracking:
            _copy_movie(data, pair, np.array(image.data), label_data, labels.metadata)
            continue
        mismatch = frames_problem(pair, image, label_data.shape, config.nchan)
        if mismatch:
            raise CellsegError(mismatch)
        frames, _ = layer_frames(
            np.array(image.data), bool(image.rgb), config.nchan, source=pair.image
        )
        links = current_links(labels.data, labels.metadata)
        val = pair.role == "validation"
        for frame in frames:
            name = pair.labels + (f"[{','.join(map(str, frame.index))}]" if frame.index else "")
            (data.val_images if val else data.images).append(frame.data)
            (data.val_labels if val else data.labels).append(label_data[frame.index])
            (data.val_names if val else data.names).append(name)
            (data.val_links if val else data.links).append(frame_links(links, frame.index))
    return data


def _copy_movie(
    data: TrainData, pair: Pair, image: np.ndarray, labels: np.ndarray, metadata: dict
) -> None:
    """One pair as a whole time-lapse, for a tracking family."""
    if labels.ndim != 3 or image.shape[:3] != labels.shape:
        raise CellsegError(
            f"a tracking model trains on time-lapses: '{pair.labels}' must be a (T, Y, X) stack "
            f"of ids consistent over time, matching '{pair.image}' frame for frame (they are "
            f"{labels.shape} and {image.shape})"
        )
    val = pair.role == "validation"
    (data.val_images if val else data.images).append(image)
    (data.val_labels if val else data.labels).append(labels)
    (data.val_names if val else data.names).append(pair.labels)
    (data.val_links if val else data.links).append(None)
    (data.val_tracks if val else data.tracks).append(_table(labels, metadata, pair.labels))


def _table(labels: np.ndarray, metadata: dict, name: str) -> Any:
    """The layer's track table if it still describes its pixels (it may have been painted
    since), else None: the table is then made from the pixels, without divisions."""
    from napari_cellseg.track.ctc import check_tracks

    table = metadata.get("tracks")
    if table is None:
        return None
    try:
        check_tracks(labels, table, name)
    except CellsegError:
        return None
    return table
