"""The channel layout of raw arrays: one 2D frame to float32 ``(C, Y, X)``, stacks to frames.

Channel layout heuristic (:func:`to_cyx`, :func:`is_stack`, :func:`iter_frames`)
--------------------------------------------------------------------------------
Raw arrays keep their native layout until :func:`to_cyx` turns one 2D frame into float32
``(C, Y, X)``. Unless ``channel_axis`` is given, a 3D array is read as follows:

* last axis of 1..4 and first axis > 4: channels last (``YXC``; 3 = RGB; 4 = RGBA, whose
  alpha channel is dropped);
* otherwise first axis of 1..4: channels first (``CYX``, the Omnipose convention), except
  when ``nchan == 1``: a model with one channel means the array is a stack of frames;
* otherwise (e.g. 7 frames of 512x512): a stack of single-channel frames (``ZYX``/``TYX``).

A 4D array is a stack of multichannel frames; the stack axis is the first axis that is not
the channel axis. An explicit ``channel_axis`` always wins. A stack of at most 4 frames is
indistinguishable from a multichannel image by shape alone: pass ``nchan=1`` to read it as
frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from napari_cellseg.errors import CellsegError

#: Most channels one image has; a longer axis is a stack (or Y, X).
MAX_CHANNELS = 4


def to_cyx(
    raw: np.ndarray, channel_axis: int | None = None, nchan: int | None = None
) -> np.ndarray:
    """Turn one raw 2D frame into a float32 ``(C, Y, X)`` array.

    See the module docstring for how the channel axis is guessed.

    Parameters
    ----------
    raw : numpy.ndarray
        A 2D image ``(Y, X)`` or a 3D multichannel image (``CYX`` or ``YXC``). Extra leading
        singleton axes are dropped.
    channel_axis : int, optional
        The axis of ``raw`` holding the channels; guessed when ``None``.
    nchan : int, optional
        The number of channels expected (e.g. by a model); a different count is an error.

    Returns
    -------
    numpy.ndarray
        float32 ``(C, Y, X)``, contiguous.

    Raises
    ------
    CellsegError
        If ``raw`` is a stack of frames (use :func:`iter_frames`), has an unusable number of
        dimensions, or its channel count differs from ``nchan``.
    """
    arr, axis = _squeeze_extra(np.asarray(raw), channel_axis)
    if arr.ndim == 2:
        cyx = arr[np.newaxis]
    elif arr.ndim == 3:
        axis = _channel_axis_3d(arr.shape, axis, nchan)
        if axis is None:
            raise CellsegError(
                f"an array of shape {arr.shape} looks like a stack of {arr.shape[0]} frames, "
                "not one image; process it frame by frame (iter_frames), or give "
                "--channel_axis if one axis holds the channels"
            )
        cyx = _channels_first(arr, axis)
    else:
        raise CellsegError(
            f"expected a 2D image (Y, X) or a multichannel image (C, Y, X), got shape "
            f"{arr.shape}; stacks are processed frame by frame (iter_frames)"
        )
    if nchan is not None and cyx.shape[0] != nchan:
        raise CellsegError(_nchan_message(arr.shape, cyx.shape[0], nchan))
    return np.ascontiguousarray(cyx, dtype=np.float32)


def is_stack(raw: np.ndarray, channel_axis: int | None = None, nchan: int | None = None) -> bool:
    """Tell whether a raw array is a stack of frames rather than one (multichannel) image.

    Parameters
    ----------
    raw : numpy.ndarray
        A raw array as returned by :func:`read_image`.
    channel_axis : int, optional
        The channel axis, if known; a 3D array with a channel axis is one image.
    nchan : int, optional
        Channels per frame, if known; ``nchan=1`` makes a short ``(k, Y, X)`` array a stack.

    Returns
    -------
    bool
        True for ``ZYX``/``TYX`` stacks and for 4D stacks of multichannel frames.
    """
    arr, axis = _squeeze_extra(np.asarray(raw), channel_axis)
    if arr.ndim == 3:
        return _channel_axis_3d(arr.shape, axis, nchan) is None
    return arr.ndim > 3


def frame_layout(
    shape: tuple[int, ...], channel_axis: int | None = None, nchan: int | None = None
) -> tuple[int, tuple[int, int]]:
    """How many 2D frames an array of ``shape`` holds, and their ``(Y, X)`` size.

    The shape-only twin of :func:`iter_frames` (same rules, nothing read or allocated), so
    that a header's shape can be checked against a mask before any pixel is loaded.

    Parameters
    ----------
    shape : tuple of int
        Shape of a raw image, e.g. from :func:`read_shape`.
    channel_axis, nchan : int, optional
        As for :func:`iter_frames`.

    Returns
    -------
    n_frames : int
        1 for a single (multichannel) image.
    yx : tuple of int
        Height and width of each frame.

    Raises
    ------
    CellsegError
        For shapes that :func:`iter_frames` cannot split into frames.
    """
    arr, axis = _squeeze_extra(np.broadcast_to(np.uint8(0), tuple(shape)), channel_axis)
    if arr.ndim < 2 or arr.ndim > 4:
        raise CellsegError(
            f"an array of shape {tuple(shape)} is not an image: expected (Y, X), (C, Y, X), "
            "(Y, X, C) or a stack of those"
        )
    n_frames = 1
    if is_stack(arr, axis, nchan):
        if arr.ndim == 3:
            return arr.shape[0], (arr.shape[1], arr.shape[2])
        stack_axis = 1 if axis == 0 else 0
        n_frames = arr.shape[stack_axis]
        axis = None if axis is None else axis - (axis > stack_axis)
        arr = arr[(slice(None),) * stack_axis + (0,)]
    if arr.ndim == 2:
        return n_frames, (arr.shape[0], arr.shape[1])
    if arr.ndim == 4:
        raise CellsegError(
            f"cannot split an array of shape {tuple(shape)} into 2D frames; expected at most "
            "(frames, Y, X, channels)"
        )
    channels = _channel_axis_3d(arr.shape, axis, nchan)
    if channels is None:
        raise CellsegError(
            f"an array of shape {tuple(shape)} has frames of shape {arr.shape}, which look like "
            "stacks themselves; give --channel_axis to say which axis holds the channels"
        )
    y, x = (v for i, v in enumerate(arr.shape) if i != channels)
    return n_frames, (y, x)


def iter_frames(
    raw: np.ndarray, channel_axis: int | None = None, nchan: int | None = None
) -> Iterator[np.ndarray]:
    """Yield each frame of a raw array as float32 ``(C, Y, X)``.

    A single image yields itself once. For a 4D array the stack axis is the first axis that
    is not ``channel_axis``.

    Parameters
    ----------
    raw : numpy.ndarray
        A raw array as returned by :func:`read_image`.
    channel_axis : int, optional
        The channel axis of ``raw`` (not of a frame); guessed per frame when ``None``.
    nchan : int, optional
        Channels per frame, checked by :func:`to_cyx`.

    Yields
    ------
    numpy.ndarray
        float32 ``(C, Y, X)`` frames.

    Raises
    ------
    CellsegError
        As :func:`to_cyx`, or for arrays with more than 4 non-singleton axes.
    """
    arr, axis = _squeeze_extra(np.asarray(raw), channel_axis)
    if not is_stack(arr, axis, nchan):
        yield to_cyx(arr, axis, nchan)
        return
    if arr.ndim == 3:
        for frame in arr:
            yield to_cyx(frame, None, nchan)
        return
    if arr.ndim != 4:
        raise CellsegError(
            f"cannot split an array of shape {arr.shape} into 2D frames; expected at most "
            "(frames, Y, X, channels)"
        )
    stack_axis = 1 if axis == 0 else 0
    frame_axis = None if axis is None else axis - (axis > stack_axis)
    for frame in np.moveaxis(arr, stack_axis, 0):
        yield to_cyx(frame, frame_axis, nchan)


def _squeeze_extra(arr: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray, int | None]:
    """Drop singleton axes in front of the last three (e.g. ImageJ's T=1, Z=1).

    Returns the array and ``channel_axis`` normalised to a non-negative index into it
    (``None`` for 2D arrays: a greyscale image has one channel whatever the setting).
    """
    axis = None
    if channel_axis is not None and arr.ndim >= 3:
        axis = _normalise_axis(channel_axis, arr.ndim)
    while arr.ndim > 3:
        extra = [i for i in range(arr.ndim - 3) if arr.shape[i] == 1 and i != axis]
        if not extra:
            break
        arr = np.squeeze(arr, axis=extra[0])
        if axis is not None and axis > extra[0]:
            axis -= 1
    return arr, axis


def _channel_axis_3d(
    shape: tuple[int, ...], channel_axis: int | None, nchan: int | None
) -> int | None:
    if channel_axis is not None:
        return channel_axis
    first, last = shape[0], shape[-1]
    if last <= MAX_CHANNELS < first:
        return 2
    if first <= MAX_CHANNELS and not (nchan == 1 and first > 1):
        return 0
    return None


def _normalise_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise CellsegError(f"channel_axis {axis} does not exist in a {ndim}D image")
    return axis % ndim


def _channels_first(arr: np.ndarray, axis: int) -> np.ndarray:
    cyx = np.moveaxis(arr, axis, 0)
    if axis == 2 and cyx.shape[0] == 4:  # RGBA: drop alpha
        cyx = cyx[:3]
    return cyx


def _nchan_message(shape: tuple[int, ...], found: int, expected: int) -> str:
    return (
        f"the image of shape {shape} has {found} channel{'s' * (found != 1)} but "
        f"{expected} {'is' if expected == 1 else 'are'} expected; give --channel_axis to say "
        "which axis holds the channels, set --nchan to match the data, or save the image "
        f"with the {expected} channel{'s' * (expected != 1)} the model uses"
    )
