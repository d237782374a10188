"""The prediction engine: frames through the network and the reconstruction, one way for all.

Every consumer walks images through :func:`predict_frames`: ``cellseg predict``,
:func:`~napari_cellseg.predict.segment_dataset` / ``score_dataset`` (``cellseg evaluate``,
``train --evaluate``), the Segment widget's worker and the Train widget's preview. The
generator yields a :class:`TileProgress` after each batch of tiles and a :class:`FrameResult`
when a frame's labels are ready; closing it (a Stop button) stops after the current batch.
With ``keep_outputs`` the results carry the network's named outputs, so that
:func:`reconstruct_frames` can redo the labels with other parameters without the network.

>>> frames = seg.prepare(raw)                                     # doctest: +SKIP
>>> labels = [r.labels for r in results(predict_frames(seg, frames))]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari_cellseg.predict.segmenter import Segmentation, Segmenter


@dataclass(frozen=True)
class TileProgress:
    """The network has done ``done`` of the ``total`` tiles of frame ``frame`` (0-based)."""

    frame: int
    done: int
    total: int


@dataclass(frozen=True)
class FrameResult:
    """Frame ``frame`` (0-based) is segmented."""

    frame: int
    segmentation: Segmentation


Event = TileProgress | FrameResult


def predict_frames(
    seg: Segmenter,
    frames: Iterable[np.ndarray],
    params: Mapping[str, Any] | Any = None,
    *,
    keep_outputs: bool = False,
) -> Generator[Event, None, None]:
    """Segment normalised ``(C, Y, X)`` frames one after the other.

    Parameters
    ----------
    seg
        The model.
    frames
        Normalised frames (:meth:`Segmenter.prepare` makes them from raw images); an iterator
        is consumed lazily, one frame at a time.
    params
        The family's reconstruction parameters: a mapping of the given ones (checked before
        the network runs) or a ``Params`` instance.
    keep_outputs
        Keep the named network outputs in each :class:`Segmentation` (to reconstruct again,
        or write them); without it they are dropped as soon as the labels exist.

    Yields
    ------
    TileProgress or FrameResult
        Progress after each batch of tiles; each frame's result once its labels are made.
    """
    chosen = _params(seg, params)
    for index, frame in enumerate(frames):
        steps = seg.network_steps(frame)
        while True:
            try:
                done, total = next(steps)
            except StopIteration as end:
                raw = end.value
                break
            yield TileProgress(index, done, total)
        outputs = seg.named_outputs(raw)
        yield FrameResult(index, _result(seg, outputs, chosen, keep_outputs))


def reconstruct_frames(
    seg: Segmenter,
    outputs: Sequence[Mapping[str, np.ndarray]],
    params: Mapping[str, Any] | Any = None,
) -> Generator[FrameResult, None, None]:
    """New labels from kept network outputs (the network does not run)."""
    chosen = _params(seg, params)
    for index, named in enumerate(outputs):
        yield FrameResult(index, _result(seg, dict(named), chosen, keep_outputs=True))


def results(events: Iterable[Event]) -> list[Segmentation]:
    """Run the engine to the end and return each frame's :class:`Segmentation`, in order."""
    return [e.segmentation for e in events if isinstance(e, FrameResult)]


def _params(seg: Segmenter, params: Mapping[str, Any] | Any) -> Any:
    if params is None:
        return seg.params()
    if is_dataclass(params) and not isinstance(params, type):
        return params
    return seg.params(**dict(params))


def _result(
    seg: Segmenter, outputs: dict[str, np.ndarray], chosen: Any, keep_outputs: bool
) -> Segmentation:
    from napari_cellseg.predict.segmenter import Segmentation

    labels = seg.reconstruct(outputs, params=chosen)
    return Segmentation(labels, outputs if keep_outputs else {})
