"""A time-lapse of labels through a tracking model (or LapTrack) to tracks.

>>> gen = track_stack(images, labels, model="track.pt")   # doctest: +SKIP
>>> for progress in gen: ...                               # doctest: +SKIP

The generator yields :class:`TrackProgress` per frame and returns a :class:`TrackResult`
(``StopIteration.value``); :func:`run` drives it to the end. All seed windows of a frame go
through the network in as few forward passes as the pixel budget allows.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family
from napari_cellseg.runtime import autocast_dtype, pick_device
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.lineage import Lineage, attributions, tracking_scores
from napari_cellseg.track.samples import (
    FramePair,
    check_stack,
    network_input,
    normalised,
    rescaled,
    scale_factor,
    window_box,
)

#: Linking methods of :func:`track_stack`.
METHODS = ("model", "laptrack")
#: Input pixels per forward pass (windows x H x W).
WINDOW_PIXELS_PER_BATCH = 16 * 256 * 256


@dataclass
class TrackProgress:
    """``frame`` of ``n_frames`` frames is linked."""

    frame: int
    n_frames: int


@dataclass
class TrackResult:
    """A tracking result in CTC form.

    Attributes
    ----------
    labels
        int32 ``(T, Y, X)`` whose ids are track ids.
    tracks
        The track table.
    cells
        DeLTA's cell number of each track id (the daughter keeping the old pole keeps her
        mother's); empty for LapTrack.
    outputs
        With ``keep_outputs``: per frame t >= 1, ``(track id at t-1, corner, prob window)``
        for every seed (DeLTA's per-cell outputs).
    """

    labels: np.ndarray
    tracks: list[Track]
    cells: dict[int, int] = field(default_factory=dict)
    outputs: dict[int, list[tuple[int, tuple[int, int], np.ndarray]]] = field(default_factory=dict)


class Tracker:
    """A tracking network on one device.

    Parameters
    ----------
    model, spec, meta
        The network, its description and the checkpoint's metadata (window size).
    device, amp
        As for segmentation (``auto``: GPU when there is one; bf16 autocast where it is fast).
    name
        For messages.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: Any,
        meta: dict[str, Any],
        *,
        device: str = "auto",
        amp: str = "auto",
        name: str = "model",
    ) -> None:
        if not get_family(spec.arch).tracks:
            raise CellsegError(
                f"{name} is a {spec.arch} segmentation model, not a tracking model: train one "
                "with `cellseg train --architecture track`, or use --method laptrack"
            )
        self.spec, self.meta, self.name = spec, meta, name
        self.device = pick_device(device)
        self.amp_dtype = autocast_dtype(self.device, amp)
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)
        tyx = (meta.get("training") or {}).get("tyx") or (256, 256)
        self.window = (int(tyx[0]), int(tyx[-1]))
        #: cell diameter the model was trained at (0: movies are used as they are)
        self.diameter = float(meta.get("diameter") or 0.0)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Tracker:
        """Load a tracking model file (or the yaml beside it)."""
        from napari_cellseg.models.checkpoint import load_model

        net, ckpt = load_model(path)
        return cls(net, ckpt.spec, ckpt.meta, name=Path(path).stem, **kwargs)

    def outputs(
        self, pair: FramePair, seeds: np.ndarray, centres: np.ndarray
    ) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
        """Each seed's output window at frame t (probabilities) and the window's corner.

        ``centres`` are the seeds' ``(y, x)`` centroids in ``pair``'s pixels.
        """
        if not len(seeds):
            return [], []
        shape = pair.labels.shape
        corners = [window_box(c, self.window, shape) for c in centres]
        per_pass = max(1, WINDOW_PIXELS_PER_BATCH // (self.window[0] * self.window[1]))
        probs: list[np.ndarray] = []
        for start in range(0, len(seeds), per_pass):
            chunk = range(start, min(start + per_pass, len(seeds)))
            x = np.stack(
                [
                    network_input(pair, int(seeds[k]), corners[k], corners[k], self.window)
                    for k in chunk
                ]
            )
            probs += list(self._forward(x))
        return probs, corners

    @torch.inference_mode()
    def _forward(self, x: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(x).to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype)
        ):
            logits = self.model(batch)
        return torch.sigmoid(logits[:, 0].float()).cpu().numpy()


#: Label ids above this are renumbered per frame before tracking (lookup tables stay small).
MAX_DIRECT_ID = 2**20


def compact(frame: np.ndarray) -> np.ndarray:
    """One frame's labels as int32, renumbered 1..n when its ids are too large to index."""
    frame = np.asarray(frame)
    if frame.size and int(frame.max()) > MAX_DIRECT_ID:
        ids, inverse = np.unique(frame, return_inverse=True)
        offset = 0 if ids[0] == 0 else 1
        return (inverse.reshape(frame.shape) + offset).astype(np.int32)
    return frame.astype(np.int32)


def track_stack(
    images: np.ndarray | None,
    labels: np.ndarray,
    *,
    model: str | Path | Tracker | None = None,
    method: str = "model",
    device: str = "auto",
    hit_threshold: float | None = None,
    min_score: float | None = None,
    keep_outputs: bool = False,
    source: str = "labels",
) -> Generator[TrackProgress, None, TrackResult]:
    """Link the cells of a labelled time-lapse into tracks.

    Parameters
    ----------
    images
        ``(T, Y, X)`` greyscale frames (needed by ``method="model"``).
    labels
        ``(T, Y, X)`` instance labels, ids per frame (any numbering).
    model
        A tracking model file (or a loaded :class:`Tracker`), for ``method="model"``.
    method
        ``model`` (the tracking U-Net) or ``laptrack`` (LAP linking of centroids, no model).
    device
        Where the network runs.
    hit_threshold, min_score
        DeLTA's decoding thresholds (None: the family's defaults, 0.05 and 0.2).
    keep_outputs
        Keep each seed's output window (:attr:`TrackResult.outputs`).
    source
        Names the input in messages.

    Raises
    ------
    CellsegError
        For a 2D array, frames of different shapes, a missing model or a segmentation model.
    """
    if method not in METHODS:
        raise CellsegError(f"tracking method {method!r} is not one of {', '.join(METHODS)}")
    labels = check_stack(labels, images if method == "model" else None, source)
    n = len(labels)
    if method == "laptrack":
        from napari_cellseg.track.laptrack import link

        yield TrackProgress(0, n)
        relabelled, tracks = link(labels)
        yield TrackProgress(n, n)
        return TrackResult(relabelled, tracks)
    if images is None:
        raise CellsegError("tracking with a model needs the images as well as the labels")
    if model is None:
        raise CellsegError(
            "no tracking model: pass one (train it with `cellseg train --architecture track`) "
            "or use the laptrack method"
        )
    tracker = model if isinstance(model, Tracker) else Tracker.from_file(model, device=device)
    params = get_family("track").params(hit_threshold=hit_threshold, min_score=min_score)
    factor = scale_factor(tracker.diameter, labels)
    lineage = Lineage()
    frame = compact(labels[0])
    lineage.start(frame)
    result = TrackResult(np.zeros(labels.shape, np.int32), [])
    small = rescaled(frame, factor, order=0)
    image = rescaled(normalised(images[0], f"{source} frame 0"), factor, order=1)
    yield TrackProgress(1, n)
    for t in range(1, n):
        prev, prev_small, prev_image = frame, small, image
        frame = compact(labels[t])
        small = rescaled(frame, factor, order=0)
        image = rescaled(normalised(images[t], f"{source} frame {t}"), factor, order=1)
        seeds = lineage.maps[-1][0]
        pair = FramePair(f"{source} t={t}", prev_image, image, prev_small, small)
        centres = np.array(ndi.center_of_mass(np.ones(prev.shape, np.uint8), prev, seeds))
        probs, corners = tracker.outputs(pair, seeds, (centres + 0.5) * factor - 0.5)
        new_ids = np.unique(frame)
        new_ids = new_ids[new_ids > 0]
        scores = tracking_scores(probs, corners, small, new_ids, hit_threshold=params.hit_threshold)
        if keep_outputs:
            tracks_of = dict(zip(*lineage.maps[-1]))
            result.outputs[t] = [
                (int(tracks_of[s]), c, p) for s, c, p in zip(seeds.tolist(), corners, probs)
            ]
        lineage.update(frame, seeds, attributions(scores, params.min_score))
        yield TrackProgress(t + 1, n)
    for t in range(n):
        result.labels[t] = lineage.relabel(t, compact(labels[t]))
    result.tracks, result.cells = lineage.tracks(), dict(lineage.cells)
    return result


def run(
    gen: Generator[TrackProgress, None, TrackResult],
    progress: Callable[[TrackProgress], Any] | None = None,
) -> TrackResult:
    """Drive a :func:`track_stack` generator to its result, calling ``progress`` per frame."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(event)
