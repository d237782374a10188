"""Image layers as the frames a model takes, and the core loaded in the background.

Shared by the Segment and Train widgets. :func:`layer_frames` follows napari's view of a layer
(its ``rgb`` flag and its displayed axes) rather than guessing the layout from the shape like
:mod:`napari_cellseg.io.images` does for files: a layer already says which axes are channels.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cellseg.errors import CellsegError


@dataclass(frozen=True)
class Frame:
    """One 2D frame of an Image layer, in the layout :meth:`Segmenter.prepare` takes.

    Attributes
    ----------
    index
        Position of the frame in the layer's leading (stack) axes; ``()`` for a 2D image.
    data
        The raw frame: ``(Y, X)``, ``(Y, X, C)`` (RGB) or ``(C, Y, X)``.
    channel_axis
        Channel axis of ``data``, or None for a single channel.
    """

    index: tuple[int, ...]
    data: np.ndarray
    channel_axis: int | None

    @property
    def spatial_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the frame."""
        shape = self.data.shape
        return shape[1:] if self.channel_axis == 0 else shape[:2]


def layer_frames(
    data: np.ndarray, rgb: bool, nchan: int, *, source: str
) -> tuple[list[Frame], tuple[int, ...]]:
    """Split an Image layer's array into the 2D frames a model with ``nchan`` channels takes.

    RGB layers have their channels last. A non-RGB layer is a stack of single-channel frames
    (one per plane of its leading axes), except that for a model of ``nchan > 1`` channels an
    axis of that size just before ``(Y, X)`` holds the channels (``CYX``, ``TCYX``).

    Parameters
    ----------
    data
        The layer data (a numpy array, copied from the layer).
    rgb
        Whether the layer is RGB(A).
    nchan
        Channels the model takes.
    source
        Layer name for error messages.

    Returns
    -------
    frames : list of Frame
        The frames, in stack order.
    lead_shape : tuple of int
        Shape of the stack axes (``()`` for one image): the labels are ``lead_shape + (Y, X)``.

    Raises
    ------
    CellsegError
        For an empty image or one whose channels do not fit the model.
    """
    if data.size == 0:
        raise CellsegError(f"Image layer '{source}' is empty ({data.shape}); choose another one")
    if data.ndim < (3 if rgb else 2):
        raise CellsegError(f"Image layer '{source}' has shape {data.shape}; it must be 2D or more")
    if rgb:
        channels, lead, axis = data.shape[-1], data.shape[:-3], -1
    elif nchan > 1 and data.ndim >= 3 and data.shape[-3] == nchan:
        channels, lead, axis = nchan, data.shape[:-3], 0
    else:
        channels, lead, axis = 1, data.shape[:-2], None
    usable = channels - (rgb and channels == 4)  # RGBA: alpha is dropped
    if nchan > 1 and usable != nchan:
        raise CellsegError(
            f"Image layer '{source}' has {usable} channel(s) but the model takes {nchan}: "
            f"choose an image with {nchan} channels (RGB, or {nchan} planes before Y, X)"
        )
    return [Frame(index, data[index], axis) for index in np.ndindex(*lead)], tuple(lead)


def placement(layer: Any, last: int | None = None) -> dict[str, Any]:
    """Scale and translate of an Image layer's spatial axes, for a layer of its results.

    Parameters
    ----------
    layer
        An Image layer, or None (then nothing is placed).
    last
        Only the last ``last`` spatial axes (2: one ``(Y, X)`` frame of a stack); all by default.

    Returns
    -------
    dict
        ``scale`` and ``translate`` keyword arguments of ``viewer.add_labels``.
    """
    if layer is None:
        return {}
    spatial = layer.ndim - (1 if layer.rgb else 0)
    first = 0 if last is None else spatial - last
    return {"scale": layer.scale[first:spatial], "translate": layer.translate[first:spatial]}


#: What the background import found: ``"accelerator"`` -> whether torch sees CUDA or MPS.
FOUND: dict[str, bool] = {}


@functools.cache
def preload_core() -> threading.Thread:
    """Import torch and the training/prediction modules once, in a background thread, and
    see whether torch has an accelerator (:func:`has_accelerator`).

    Called when a widget is created, so that the first run does not spend its first seconds
    importing (an import holds the interpreter lock for long stretches, which would stall the
    viewer during training). Returns the (daemon) thread; later calls return the same one.
    Code that imports torch elsewhere joins it first (:func:`core_ready`): two threads
    importing torch at once can see half-initialised modules.
    """

    def load() -> None:
        try:
            import torch._dynamo  # noqa: F401 - imported by the first optimiser, for long
            from torch.utils import tensorboard  # noqa: F401 - the training logger's

            import napari_cellseg.predict.engine  # noqa: F401
            import napari_cellseg.predict.segmenter  # noqa: F401
            import napari_cellseg.train.loop  # noqa: F401
            from napari_cellseg.runtime import pick_device

            FOUND["accelerator"] = pick_device("auto").type != "cpu"
        except Exception:  # best effort: the worker imports again and reports any problem
            return

    thread = threading.Thread(target=load, name="cellseg-preload", daemon=True)
    thread.start()
    return thread


def core_ready() -> None:
    """Wait until :func:`preload_core` has imported torch (call before importing it)."""
    preload_core().join()


def has_accelerator(device: str) -> bool | None:
    """Whether training on ``device`` (an option value: auto, cpu, cuda...) uses a GPU.

    ``"auto"`` is known once :func:`preload_core` is done (None before, without waiting;
    False when torch could not be imported); a named device is taken at its word.
    """
    if device != "auto":
        return device != "cpu"
    if "accelerator" in FOUND or not preload_core().is_alive():
        return FOUND.get("accelerator", False)
    return None
