"""Raw images to the normalised ``(C, Y, X)`` frames a network takes, for training and prediction.

Torch-free: it runs in data-loader worker processes and in the napari readers' process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.normalize import normalize_percentile

#: Normalisation stored in every checkpoint and applied identically at prediction time.
NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8}


@dataclass(frozen=True)
class Channels:
    """How the channels of an image file or layer become a model's input channels.

    Attributes
    ----------
    nchan
        Channels the model takes.
    chan, chan2
        Cellpose-style 1-based channel to segment and optional second channel (0: unused).
    channel_axis
        Axis of the channels in the raw array (None: guessed).
    """

    nchan: int = 1
    chan: int = 0
    chan2: int = 0
    channel_axis: int | None = None

    @classmethod
    def of(cls, options: Any) -> Channels:
        """The channel options of anything that has them as attributes (a ``TrainConfig``)."""
        return cls(int(options.nchan), int(options.chan), int(options.chan2), options.channel_axis)


def select_channels(image: np.ndarray, config: Channels, *, source: str) -> np.ndarray:
    """Bring a (C, Y, X) image to the model's channel count.

    ``--chan``/``--chan2`` pick channels (1-based, Cellpose style). With ``nchan == 1`` a
    multi-channel image (e.g. RGB) becomes its channel mean (greyscale).

    Raises
    ------
    CellsegError
        When the image has fewer channels than the model takes, naming ``source``.
    """
    c = image.shape[0]
    if config.chan:
        wanted = [config.chan - 1] + ([config.chan2 - 1] if config.chan2 else [])
        if max(wanted) >= c:
            raise CellsegError(
                f"{source}: --chan/--chan2 ask for channel {max(wanted) + 1} but the image has "
                f"{c} channel(s); check --channel_axis or the channel numbers"
            )
        return image[wanted]
    if c == config.nchan:
        return image
    if config.nchan == 1:
        return image.mean(axis=0, keepdims=True)
    raise CellsegError(
        f"{source}: the image has {c} channel(s) but the model takes --nchan {config.nchan}; "
        f"pass --nchan {c}, pick channels with --chan/--chan2, or set --channel_axis"
    )


def prepare_image(raw: np.ndarray, config: Channels, *, source: str) -> list[np.ndarray]:
    """Raw image array -> list of normalised (C, Y, X) frames (one per plane of a stack).

    For a single-channel model (and no ``--chan``) a short ``(k, Y, X)`` array is a stack of
    ``k`` frames, not a ``k``-channel image; RGB images (channels last) stay one image.
    """
    from napari_cellseg.io.images import is_stack, iter_frames, to_cyx

    nchan = None if config.chan else config.nchan
    if is_stack(raw, channel_axis=config.channel_axis, nchan=nchan):
        frames = list(iter_frames(raw, channel_axis=config.channel_axis, nchan=nchan))
    else:
        frames = [to_cyx(raw, channel_axis=config.channel_axis)]
    return [
        normalize_percentile(
            select_channels(f, config, source=source), NORMALIZATION["low"], NORMALIZATION["high"]
        )
        for f in frames
    ]
