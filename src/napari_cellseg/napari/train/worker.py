"""The Train widget's thread-worker generator: the training loop, and previews of its models.

:func:`run_training` builds the samples from the copied layers (or checks a folder), runs the
training generator :func:`napari_cellseg.train.train` and passes its events on; each time the
model is saved (at most every :data:`PREVIEW_MIN_S` seconds, and at the end) it segments the
preview frame with the saved model through the prediction engine. Stopping sets an event that
the training generator checks after each step; it then saves the last good checkpoint.
Torch is imported when the worker starts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._frames import Frame, core_ready
from napari_cellseg.napari.train.data import TrainData

if TYPE_CHECKING:
    from napari_cellseg.train import Progress, TrainResult

#: Least time between two previews (seconds): each one costs a segmentation in the worker.
PREVIEW_MIN_S = 5.0


@dataclass(frozen=True)
class Preview:
    """A segmentation of the preview frame by the model of an epoch (yielded by the worker)."""

    epoch: int
    labels: np.ndarray


def run_training(
    config: TrainConfig,
    data: TrainData,
    preview: Frame | None,
    *,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[Progress | Preview, None, TrainResult]:
    """Worker: build the samples, run the training generator, preview saved models.

    Parameters
    ----------
    config
        Training options (``config.dir`` set: train on that folder, after checking it).
    data
        Copies of the layer data (empty for a folder).
    preview
        A copy of the frame to segment each time the model is saved, or None.
    stop
        Set it to stop after the current step (the last good state is saved).
    clock
        Time source for throttling the previews.

    Yields
    ------
    Progress or Preview
        Training events, and now and then a preview segmentation.

    Returns
    -------
    TrainResult
        The training result.
    """
    core_ready()
    from napari_cellseg.train import train

    items, val_items = build_items(config, data)
    gen = train(config, items, val_items, stop=stop, num_workers=0)
    last_preview = -math.inf
    while True:
        try:
            event = next(gen)
        except StopIteration as done:
            return done.value
        yield event
        saved = event.kind == "epoch" and (
            event.epoch % max(config.save_every, 1) == 0 or event.epoch == event.n_epochs
        )
        if preview is not None and saved and not stop.is_set():
            if clock() - last_preview >= PREVIEW_MIN_S or event.epoch == event.n_epochs:
                last_preview = clock()
                yield Preview(event.epoch, segment_frame(config.model, preview, config.device))


def build_items(config: TrainConfig, data: TrainData) -> tuple[list | None, list | None]:
    """Training and validation samples of the copied layers; for a folder (``config.dir``)
    its QC check, then ``None, None``: the training code reads the folder itself."""
    from napari_cellseg.families import get_family

    if config.dir:
        check_folder(config)
        return None, None
    family = get_family(config.architecture)
    items = family.make_items(
        data.images,
        data.labels,
        config,
        names=data.names,
        links=data.links,
        tracks=data.tracks,
    )
    val_items = None
    if data.val_images:
        val_items = family.make_items(
            data.val_images,
            data.val_labels,
            config,
            names=data.val_names,
            links=data.val_links,
            tracks=data.val_tracks,
        )
    return items, val_items


def segment_frame(model: str, frame: Frame, device: str) -> np.ndarray:
    """Labels of one frame by a saved model, through the prediction engine."""
    from napari_cellseg.predict import Segmenter, predict_frames, results

    segmenter = Segmenter.from_file(model, device=device)
    prepared = segmenter.prepare(frame.data, channel_axis=frame.channel_axis, source="preview")
    return results(predict_frames(segmenter, prepared[:1]))[0].labels


def check_folder(config: TrainConfig) -> None:
    """QC a training folder; blocking problems raise, warnings are issued as warnings."""
    import warnings

    from napari_cellseg.qc import qc_dataset
    from napari_cellseg.train.samples import discover_folders

    for dataset in discover_folders(config.dir, config):
        part = dataset.root
        results = qc_dataset(
            dataset,
            links=config.links,
            nchan=None if config.chan else config.nchan,
            channel_axis=config.channel_axis,
        )
        reports = [report for _, report in results]
        bad = [r for r in reports if r.blocking]
        if bad:
            raise CellsegError(
                f"{len(bad)} mask(s) in {part} have blocking problems, e.g. "
                f"{bad[0].summary(1)}; check them with `cellseg qc {part}` (or fix copies with "
                f"`cellseg qc {part} --fix OUT`)"
            )
        n_warn = sum(p.severity == "warning" for r in reports for p in r.problems)
        if n_warn:
            warnings.warn(
                f"{n_warn} annotation warning(s) in {part}; see `cellseg qc {part}`",
                stacklevel=2,
            )
