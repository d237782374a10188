"""The Segment widget on an image too large for memory: from its file, block by block.

An Image layer that is multiscale or lazy (a Zarr or Dask array) and was opened from an
OME-Zarr / Zarr folder or a TIFF (:func:`source_of`) is segmented from that file by
:func:`napari_cellseg.predict.blockwise.segment_chunked` in the widget's worker
(:func:`segment_file`): only a block's worth of the image is in memory at a time, and the
labels are written chunk by chunk into ``<name>_masks.ome.zarr`` beside the image, under a
name that is free (:func:`free_destination`: nothing is replaced). The widget then shows that
label Zarr as a Labels layer, which napari reads as it draws (:func:`labels_layer_data`).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.napari._frames import core_ready

if TYPE_CHECKING:
    from napari_cellseg.predict.config import PredictConfig

#: File types the blockwise path reads lazily besides Zarr folders.
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Blocks:
    """Progress: pass ``step`` over the blocks has done ``done`` of its ``total`` blocks."""

    step: int
    done: int
    total: int


class Stopped(Exception):
    """Raised between blocks when the user stopped the run."""


def source_of(layer: Any) -> Path | None:
    """The file to segment a layer from: for a multiscale or lazy Image layer opened from a
    Zarr folder or a TIFF, that path; None for a layer held in memory (segmented as it is).

    Parameters
    ----------
    layer
        A napari Image layer.

    Returns
    -------
    pathlib.Path or None
        The file or folder.
    """
    if not layer.multiscale and isinstance(layer.data, np.ndarray):
        return None
    path = layer.source.path
    if not path:
        return None
    path = Path(path)
    if path.name.lower().endswith(".zarr") or path.suffix.lower() in TIFF_SUFFIXES:
        return path
    return None


def free_destination(source: Path) -> Path:
    """``<name>_masks.ome.zarr`` beside ``source``, or ``<name>-2_masks.ome.zarr``... when
    that exists: a new result never replaces an earlier one."""
    from napari_cellseg.io.images.chunked import image_name

    name = image_name(source)
    for k in itertools.count(1):
        stem = name if k == 1 else f"{name}-{k}"
        dest = source.parent / f"{stem}_masks.ome.zarr"
        if not dest.exists():
            return dest
    raise AssertionError("unreachable")


def segment_file(
    config: PredictConfig, source: Path, destination: Path, stop: threading.Event
) -> Generator[Blocks, None, Path]:
    """Worker: segment ``source`` block by block into ``destination``, yielding progress.

    The blockwise engine runs in a thread of its own; its passes report each finished block
    here. Setting ``stop`` (or closing this generator) ends the run at the next block, and the
    engine removes its scratch and the unfinished label image: nothing is left.

    Parameters
    ----------
    config
        The prediction options (model, device, reconstruction parameters).
    source
        The image file or folder.
    destination
        The label image to write (must not exist).
    stop
        Set by the widget's Stop.

    Yields
    ------
    Blocks
        After each block of each pass.

    Returns
    -------
    pathlib.Path
        ``destination``.
    """
    core_ready()
    from napari_cellseg.predict.blockwise import segment_chunked

    events: queue.Queue[Blocks | None] = queue.Queue()
    passes = itertools.count(1)

    def mapper(function: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any) -> list:
        step, done = next(passes), []
        for item in items:
            if stop.is_set():
                raise Stopped
            done.append(function(item, shared))
            events.put(Blocks(step, len(done), len(items)))
        return done

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["path"] = segment_chunked(source, destination, config, mapper=mapper)
        except BaseException as exc:  # handed to the worker thread, re-raised there
            outcome["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=run, name="cellseg-blockwise", daemon=True)
    thread.start()
    try:
        while (event := events.get()) is not None:
            yield event
    finally:
        stop.set()  # a closed generator (Stop) ends the engine too
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["path"]


def labels_layer_data(destination: Path) -> Any:
    """The label image's array, open for editing in place (it is this run's own new file)."""
    import zarr

    return zarr.open_array(str(destination / "s0"), mode="r+")
