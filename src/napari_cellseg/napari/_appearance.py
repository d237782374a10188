"""What an Image layer looks like: fluorescence (bright cells on dark) or transmitted light.

Shared by the Segment widget (which built-in model to offer first) and the Train widget (which
pairs belong together). The test is the place of the median between the low and high
percentiles: a fluorescence image is mostly dark background with a bright minority (nuclei
stained with DAPI: the median sits within the lowest few percent of the range), whereas in
phase contrast or bright field the background is a mid or light grey and the cells are darker
(median at 30-95 % of the range). Measured on the shared data: BBBC039 and DSB 2018
fluorescence 0.00-0.15 (one of 40 BBBC039 images at 0.59), bacteria in phase contrast
0.30-0.60, bright field 0.68-0.96; the synthetic samples: nuclei 0.02-0.04, bacteria 0.42-0.49.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FLUORESCENCE, TRANSMITTED = "fluorescence", "transmitted light"
#: Median position (0 = 1st percentile, 1 = 99th) below which an image is fluorescence.
DARK_BACKGROUND = 0.2
#: Pixels looked at (a regular subsample of the first frame).
SAMPLE_PIXELS = 256 * 256
#: The built-in model for each kind of image.
BUILTIN_FOR = {FLUORESCENCE: "nuclei", TRANSMITTED: "bacteria_phase"}


def first_frame(data: Any, rgb: bool) -> np.ndarray:
    """A subsample (at most :data:`SAMPLE_PIXELS`) of a layer's first 2D frame, as greys."""
    spatial = data.ndim - (1 if rgb else 0)
    frame = data[(0,) * (spatial - 2)]
    step = max(1, int(np.ceil(np.sqrt(frame.shape[0] * frame.shape[1] / SAMPLE_PIXELS))))
    sample = np.asarray(frame[::step, ::step], dtype=np.float64)
    return sample[..., :3].mean(axis=-1) if rgb else sample


def median_position(image: np.ndarray) -> float:
    """Where the median lies between the 1st and the 99th percentile (0 to 1).

    Parameters
    ----------
    image
        A 2D grey image.

    Returns
    -------
    float
        0 for a flat image.
    """
    if image.size == 0:
        return 0.0
    low, median, high = np.percentile(image, [1, 50, 99])
    return 0.0 if high <= low else float((median - low) / (high - low))


def appearance(data: Any, rgb: bool = False) -> str:
    """:data:`FLUORESCENCE` or :data:`TRANSMITTED` for an Image layer's data (its first frame).

    Parameters
    ----------
    data
        The layer's array (``(..., Y, X)``, or ``(..., Y, X, C)`` when ``rgb``).
    rgb
        Whether the layer is RGB(A).
    """
    position = median_position(first_frame(data, rgb))
    return FLUORESCENCE if position < DARK_BACKGROUND else TRANSMITTED


@dataclass(frozen=True)
class ImageKind:
    """What two images of the same experiment share.

    Attributes
    ----------
    frame_shape
        ``(Y, X)`` of a frame.
    dtype
        The array's data type.
    channels
        Channels per pixel (3 or 4 for RGB(A), else 1).
    looks
        :func:`appearance`.
    """

    frame_shape: tuple[int, int]
    dtype: str
    channels: int
    looks: str


def image_kind(layer: Any) -> ImageKind:
    """The :class:`ImageKind` of an Image layer (a multiscale one: looked at its smallest level)."""
    data, rgb = layer.data, bool(layer.rgb)
    shape = data.shape[-3:-1] if rgb else data.shape[-2:]
    channels = data.shape[-1] if rgb else 1
    looks = appearance(data[-1] if layer.multiscale else data, rgb)
    return ImageKind(tuple(shape), np.dtype(data.dtype).str, int(channels), looks)
