"""The Segment widget's thread-worker generators: thin consumers of the prediction engine.

:func:`segment` loads the model (once; the widget keeps it), splits the layer's copy into
frames and runs :func:`napari_cellseg.predict.predict_frames` over them, yielding the engine's
events as they come; :func:`reconstruct` redoes the labels from kept network outputs with
:func:`napari_cellseg.predict.reconstruct_frames`. Stopping is the worker's ``quit()``: the
worker stops iterating at the next event and the engine's generator is closed with it.
Neither function touches a layer; torch is imported when the worker starts.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.napari._frames import core_ready, layer_frames

if TYPE_CHECKING:
    from napari_cellseg.predict import FrameResult, Segmenter, TileProgress


@dataclass(frozen=True)
class Job:
    """What a run is about: the model, the device, the image layer and its data.

    Attributes
    ----------
    model
        Built-in model name or model file.
    device
        Device asked for (``auto``, ``cpu``...).
    image
        Name of the Image layer.
    data
        The layer's array (identity check of the cache; the worker gets a copy).
    rgb
        Whether the layer is RGB.
    diameter
        Mean cell diameter in the image, in pixels (0: as is).
    """

    model: str
    device: str
    image: str
    data: np.ndarray
    rgb: bool
    diameter: float = 0.0

    @property
    def cache_key(self) -> tuple[str, str, int, float]:
        """Network outputs depend on the model, the device, the image and the diameter."""
        return self.model, self.device, id(self.data), self.diameter


@dataclass
class Outputs:
    """Network outputs of one image (all frames) under one model, kept for re-running the
    reconstruction.

    Attributes
    ----------
    data
        The layer's array: identity check, and keeps its id from being reused.
    outputs
        The named network outputs of each frame.
    lead_shape
        Shape of the layer's stack axes (``()`` for one image).
    """

    data: np.ndarray
    outputs: list[dict[str, np.ndarray]]
    lead_shape: tuple[int, ...]


@dataclass(frozen=True)
class Loaded:
    """The model of the job (yielded first, so that the widget keeps it whatever follows)."""

    key: tuple[str, str]
    segmenter: Segmenter


@dataclass(frozen=True)
class Frames:
    """How many frames the image holds (yielded before the network runs)."""

    count: int


Result = tuple[Outputs, list[np.ndarray]]


def segment(
    job: Job,
    model: Segmenter | str,
    image: np.ndarray,
    params: Mapping[str, Mapping[str, Any]],
) -> Generator[Loaded | Frames | TileProgress | FrameResult, None, Result]:
    """Worker: load the model if needed and segment every frame of ``image``.

    Parameters
    ----------
    job
        The run.
    model
        A loaded model, or the name or file to load it from.
    image
        A copy of the layer's data.
    params
        Reconstruction parameters per family; the model's family's are used.

    Yields
    ------
    Loaded, Frames, TileProgress or FrameResult
        The model, the frame count, then the engine's events.

    Returns
    -------
    tuple
        The network outputs to keep and the labels of each frame.
    """
    core_ready()
    from napari_cellseg.predict import FrameResult, Segmenter, predict_frames

    if isinstance(model, str):
        model = Segmenter.from_file(model, device=job.device)
    yield Loaded((job.model, job.device), model)
    model.diameter = job.diameter
    frames, lead = layer_frames(image, job.rgb, model.spec.nchan, source=job.image)
    yield Frames(len(frames))
    prepared = (
        model.prepare(frame.data, channel_axis=frame.channel_axis, source=job.image)[0]
        for frame in frames
    )
    done = []
    for event in predict_frames(model, prepared, params.get(model.arch, {}), keep_outputs=True):
        if isinstance(event, FrameResult):
            done.append(event.segmentation)
        yield event
    return Outputs(job.data, [s.outputs for s in done], lead), [s.labels for s in done]


def reconstruct(
    model: Segmenter, kept: Outputs, params: Mapping[str, Any]
) -> Generator[FrameResult, None, Result]:
    """Worker: new labels from kept network outputs (the network does not run).

    Yields
    ------
    FrameResult
        Each frame's new labels.

    Returns
    -------
    tuple
        ``kept`` and the labels of each frame.
    """
    from napari_cellseg.predict import reconstruct_frames

    labels = []
    for event in reconstruct_frames(model, kept.outputs, params):
        labels.append(event.segmentation.labels)
        yield event
    return kept, labels
