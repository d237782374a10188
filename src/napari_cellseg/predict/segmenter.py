"""The model on one image: preparation, tiled network, named outputs, reconstruction.

>>> seg = Segmenter.from_file("model.pt")          # doctest: +SKIP
>>> result = seg.segment(image)                     # doctest: +SKIP
>>> result.labels                                   # doctest: +SKIP

The network runs on overlapping tiles (batched, blended with a smooth window) so its working
memory is bounded by the tile size; the reconstruction (the model family's, see
:mod:`napari_cellseg.families`) runs on the blended outputs and can be re-run with other
parameters without running the network again. Beyond the working memory, an image costs the
full-size arrays of its outputs and labels: an 8192x8192 image segments in about 3 GB.
:mod:`napari_cellseg.predict.engine` walks frames and images through these steps for every
consumer (CLI, dataset scoring, the napari widgets).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family
from napari_cellseg.preprocess import Channels, prepare_image
from napari_cellseg.runtime import autocast_dtype, pick_device

if TYPE_CHECKING:
    from napari_cellseg.io.datasets import Dataset, Sample
    from napari_cellseg.predict.config import PredictConfig


#: Pixels per forward pass when the batch size is automatic (8 tiles of 256x256): bounds the
#: memory whatever the tile size.
TILE_PIXELS_PER_BATCH = 8 * 256 * 256


@dataclass
class Segmentation:
    """Result of segmenting one 2D image.

    Attributes
    ----------
    labels
        Instance labels (Y, X), uint16 or uint32.
    outputs
        The network's blended outputs by name (``flow`` (2,Y,X), ``dist``, ``boundary``,
        ``prob``, ``object``, ``contour``) — what :meth:`Segmenter.reconstruct` needs.
    """

    labels: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class TileLayout:
    """The tiles of one image: :meth:`Segmenter.tile_layout`.

    Attributes
    ----------
    tile
        ``(th, tw)`` tile size in pixels.
    padded
        ``(H, W)`` size of the image padded (reflect) at the bottom and right.
    starts
        ``(y, x)`` of each tile in the padded image, in the order the network runs them.
    batch
        Tiles per forward pass; the last pass takes what is left.
    """

    tile: tuple[int, int]
    padded: tuple[int, int]
    starts: list[tuple[int, int]]
    batch: int


def _tile_starts(size: int, tile: int, overlap: float, step: int = 1) -> list[int]:
    """Tile offsets covering ``size``, multiples of ``step`` (the network's pooling grid)."""
    if size <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    n = int(np.ceil((size - tile) / stride)) + 1
    starts = np.linspace(0, size - tile, n)
    return sorted({min(size - tile, step * round(v / step)) for v in starts})


def _blend_window(tile: tuple[int, int]) -> np.ndarray:
    """Smooth weights that fall off toward the tile edges (never exactly zero)."""
    wins = []
    for n in tile:
        ramp = np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1) / max(n / 8, 1)
        wins.append(np.clip(ramp, 0.05, 1.0))
    return np.outer(*wins).astype(np.float32)


class Segmenter:
    """A loaded model plus everything needed to apply it like it was trained.

    Parameters
    ----------
    model
        The network (eval mode).
    spec
        Its :class:`~napari_cellseg.models.ModelSpec`.
    meta
        The checkpoint's metadata (normalisation, diameter, training options).
    device
        ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
    tile
        Largest tile edge in pixels (a multiple of 16); a smaller image is one tile. Larger
        tiles waste less on overlaps; memory is bounded by the batch of tiles.
    overlap
        Fraction of the tile shared with its neighbour.
    batch_size
        Tiles per forward pass (None: as many as fit in :data:`TILE_PIXELS_PER_BATCH` pixels).
    diameter
        Mean cell diameter in the images, in pixels (0: the images are used as they are). For a
        model trained with ``--diameter D`` images are resized by ``D / diameter`` before the
        network and its outputs resized back, as in Omnipose and Cellpose.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec,
        meta: dict[str, Any],
        *,
        device: str = "auto",
        tile: int = 768,
        overlap: float = 0.1,
        batch_size: int | None = None,
        amp: str = "auto",
        name: str = "model",
        diameter: float = 0.0,
    ) -> None:
        self.spec = spec
        self.meta = meta
        self.name = name
        self.device = pick_device(device)
        self.amp_dtype = autocast_dtype(self.device, amp)
        self.model = model.to(self.device).eval()
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.tile = int(tile)
        self.overlap = float(overlap)
        self.batch_size = batch_size
        self.diameter = float(diameter)
        self.family = get_family(spec.arch)
        if self.family.tracks:
            raise CellsegError(
                f"{name} is a tracking model ({spec.arch}): it links cells across frames and "
                "does not segment; use `cellseg track --model` (or the Track widget), and a "
                "segmentation model here"
            )
        training = meta.get("training") or {}
        self.channels = Channels(
            nchan=spec.nchan,
            chan=int(training.get("chan") or 0),
            chan2=int(training.get("chan2") or 0),
            channel_axis=training.get("channel_axis"),
        )

    @classmethod
    def from_file(cls, model: str | Path, **kwargs: Any) -> Segmenter:
        """Load a model file, the yaml beside it, or a built-in model by name."""
        from napari_cellseg.models.builtin import resolve_model
        from napari_cellseg.models.checkpoint import load_model

        path = resolve_model(model)
        net, ckpt = load_model(path)
        return cls(net, ckpt.spec, ckpt.meta, name=Path(path).stem, **kwargs)

    @classmethod
    def from_config(cls, config: PredictConfig) -> Segmenter:
        """Load ``config.model`` with the config's device, tiling, precision and diameter."""
        if not config.model:
            raise CellsegError("pass --model MODEL (a model file, its yaml, or a built-in name)")
        return cls.from_file(
            config.model,
            device=config.run_device,
            tile=config.tile,
            overlap=config.overlap,
            batch_size=config.batch_size,
            amp=config.amp,
            diameter=config.diameter,
        )

    @property
    def arch(self) -> str:
        """Model family name (``omni``, ``unet``, ``dcan``...)."""
        return self.spec.arch

    @property
    def scale(self) -> float:
        """Resize factor applied to images before the network (1: none).

        ``model diameter / diameter`` when both are set, else 1.
        """
        trained = float(self.meta.get("diameter") or 0.0)
        if self.diameter < 0:
            raise CellsegError(f"diameter must be >= 0 pixels, not {self.diameter:g}")
        return trained / self.diameter if trained > 0 and self.diameter > 0 else 1.0

    # -- network ----------------------------------------------------------------------------
    def prepare(
        self, raw: np.ndarray, *, channel_axis: int | None = None, source: str = "image"
    ) -> list[np.ndarray]:
        """Raw image (2D, multichannel or stack) -> normalised (C, Y, X) frames.

        ``channel_axis`` overrides the model's for this call only.
        """
        channels = self.channels
        if channel_axis is not None:
            channels = Channels(channels.nchan, channels.chan, channels.chan2, channel_axis)
        return prepare_image(np.asarray(raw), channels, source=source)

    def network(
        self, image: np.ndarray, *, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Blended network outputs (K, Y, X) float32 for one normalised (C, Y, X) image.

        The image is resized by :attr:`scale` first and the outputs resized back, so they always
        have the image's shape (and the family brings lengths back to the image's pixels).
        ``progress(done, total)`` is called after each batch of tiles.
        """
        steps = self.network_steps(image)
        while True:
            try:
                done, total = next(steps)
            except StopIteration as end:
                return end.value
            if progress is not None:
                progress(done, total)

    def network_steps(self, image: np.ndarray) -> Generator[tuple[int, int], None, np.ndarray]:
        """:meth:`network` as a generator: yields ``(tiles done, tiles)`` after each batch and
        returns the outputs."""
        c, h, w = image.shape
        if c != self.spec.nchan:
            raise CellsegError(
                f"the image has {c} channel(s) but model {self.name} takes {self.spec.nchan}"
            )
        s = self.scale
        if s == 1.0:
            return (yield from self._tiled(image))
        size = (max(16, round(h * s)), max(16, round(w * s)))
        out = _resize((yield from self._tiled(_resize(image, size))), (h, w))
        return self.family.rescale_outputs(out, size[0] / h)

    def tile_layout(self, h: int, w: int) -> TileLayout:
        """Where the tiles of an ``h`` x ``w`` image lie (the whole image's grid).

        The image is padded (reflect) at the bottom and right to ``padded`` so that every tile
        starts on the network's grid; tiles of ``tile`` pixels start at ``starts`` and run
        ``batch`` at a time. A chunk of a huge image is predicted with the same grid
        (:mod:`napari_cellseg.predict.blockwise`), so its outputs are the whole image's.
        """
        t, k = self.tile, self.spec.divisor()
        th, tw = min(t, _round_up(h, 16)), min(t, _round_up(w, 16))
        # pad to the network's grid too, so that every tile starts on it like the whole image
        H, W = max(th, _round_up(h, k)), max(tw, _round_up(w, k))
        starts = [
            (y, x)
            for y in _tile_starts(H, th, self.overlap, k)
            for x in _tile_starts(W, tw, self.overlap, k)
        ]
        batch = self.batch_size or max(1, TILE_PIXELS_PER_BATCH // (th * tw))
        return TileLayout((th, tw), (H, W), starts, batch)

    def forward(self, tiles: np.ndarray) -> np.ndarray:
        """Raw network outputs ``(B, K, th, tw)`` float32 of a batch of ``(B, C, th, tw)`` tiles."""
        x = torch.from_numpy(tiles).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with (
            torch.no_grad(),
            torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=self.amp_dtype is not None,
            ),
        ):
            out = self.model(x)
        return out.float().cpu().numpy()

    def _tiled(self, image: np.ndarray) -> Generator[tuple[int, int], None, np.ndarray]:
        """Blended outputs of the tiles of ``image``; yields progress after each batch."""
        h, w = image.shape[1:]
        grid = self.tile_layout(h, w)
        (th, tw), (H, W), starts, batch = grid.tile, grid.padded, grid.starts, grid.batch
        if (H, W) != (h, w):
            image = np.pad(image, ((0, 0), (0, H - h), (0, W - w)), mode="reflect")
        window = _blend_window((th, tw))
        acc = np.zeros((self.spec.n_outputs(), H, W), np.float32)
        norm = np.zeros((H, W), np.float32)
        for i in range(0, len(starts), batch):
            chunk = starts[i : i + batch]
            out = self.forward(np.stack([image[:, y : y + th, x : x + tw] for y, x in chunk]))
            for (y, x0), o in zip(chunk, out):
                acc[:, y : y + th, x0 : x0 + tw] += o * window
                norm[y : y + th, x0 : x0 + tw] += window
            yield min(i + batch, len(starts)), len(starts)
        acc /= norm
        return acc[:, :h, :w]

    def named_outputs(self, raw_out: np.ndarray) -> dict[str, np.ndarray]:
        """Split raw network outputs into the family's named maps."""
        return self.family.named_outputs(raw_out, self.meta)

    # -- reconstruction ---------------------------------------------------------------------
    def params(self, **params: Any) -> Any:
        """The family's reconstruction parameters, ``params`` overriding the defaults."""
        return self.family.params(**params)

    def reconstruct(
        self, outputs: dict[str, np.ndarray], params: Any = None, **given: Any
    ) -> np.ndarray:
        """Instance labels from named outputs: with the family's ``params`` (a ``Params``
        instance), or with the ``given`` values overriding the family's defaults."""
        chosen = params if params is not None else self.params(**given)
        device = str(self.device) if self.device.type == "cuda" else "cpu"
        return _compact_dtype(self.family.reconstruct(outputs, chosen, device=device))

    def segment(self, image: np.ndarray, **params: Any) -> Segmentation:
        """Segment one normalised (C, Y, X) image."""
        from napari_cellseg.predict.engine import predict_frames, results

        return results(predict_frames(self, [image], params, keep_outputs=True))[0]

    def segment_raw(
        self,
        raw: np.ndarray,
        *,
        channel_axis: int | None = None,
        source: str = "image",
        **params: Any,
    ) -> Iterator[Segmentation]:
        """Segment a raw 2D image or stack frame by frame (one :class:`Segmentation` each)."""
        from napari_cellseg.predict.engine import predict_frames, results

        frames = self.prepare(raw, channel_axis=channel_axis, source=source)
        yield from results(predict_frames(self, frames, params, keep_outputs=True))


def segment_dataset(
    seg: Segmenter, dataset: Dataset, *, channel_axis: int | None = None, **params: Any
) -> Iterator[tuple[Sample, int, np.ndarray, Segmentation]]:
    """Segment every image of a dataset, frame by frame.

    Parameters
    ----------
    seg
        The model.
    dataset
        From :func:`napari_cellseg.io.datasets.discover`.
    channel_axis
        Channel axis of the image files (None: guessed per file).
    **params
        Reconstruction parameters of the model's family.

    Yields
    ------
    sample, frame_index, frame, segmentation
        The sample, the frame's index in its file (0 for a 2D image), the normalised
        ``(C, Y, X)`` frame and its :class:`Segmentation`.
    """
    from napari_cellseg.io.datasets import load_image
    from napari_cellseg.predict.engine import FrameResult, predict_frames

    chosen = seg.params(**params)
    for sample in dataset.samples:
        frames = seg.prepare(
            load_image(sample), channel_axis=channel_axis, source=str(sample.image)
        )
        for event in predict_frames(seg, frames, chosen, keep_outputs=True):
            if isinstance(event, FrameResult):
                yield sample, event.frame, frames[event.frame], event.segmentation


def score_dataset(
    seg: Segmenter,
    dataset: Dataset,
    *,
    on_image: Callable[[Sample, int, np.ndarray, Segmentation, dict], None] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Segment a dataset with ground truth and score each frame against its mask.

    Parameters
    ----------
    seg
        The model.
    dataset
        Samples with masks.
    on_image
        Called with ``(sample, frame_index, frame, segmentation, row)`` after each frame
        (e.g. to write the masks or an overlay).
    **params
        Reconstruction parameters of the model's family.

    Returns
    -------
    list of dict
        One row per frame: ``name`` plus :func:`napari_cellseg.metrics.evaluate_pair`'s scores.
    """
    from napari_cellseg.io.datasets import load_mask
    from napari_cellseg.metrics import evaluate_pair

    rows: list[dict[str, Any]] = []
    truth: dict[str, np.ndarray] = {}
    for sample, i, frame, result in segment_dataset(seg, dataset, **params):
        if sample.name not in truth:  # read each mask once, keep only the current one
            truth = {sample.name: load_mask(sample)}
        mask = truth[sample.name]
        if mask.ndim == 3:
            row = {"name": f"{sample.name}[{i}]", **evaluate_pair(mask[i], result.labels)}
        else:
            row = {"name": sample.name, **evaluate_pair(mask, result.labels)}
        rows.append(row)
        if on_image is not None:
            on_image(sample, i, frame, result, row)
    return rows


def _resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (K, Y, X) maps (antialiased when shrinking)."""
    x = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    shrink = size[0] < maps.shape[1] or size[1] < maps.shape[2]
    y = torch.nn.functional.interpolate(
        x, size=size, mode="bilinear", align_corners=False, antialias=shrink
    )
    return y[0].numpy()


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _compact_dtype(labels: np.ndarray) -> np.ndarray:
    top = int(labels.max()) if labels.size else 0
    return labels.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)


#: Models loaded by :func:`cached_segmenter` in this process, by their options.
_LOADED: dict[str, Segmenter] = {}


def cached_segmenter(config: PredictConfig) -> Segmenter:
    """The model of ``config``, loaded once per process (a Dask worker's tasks share it).

    Parameters
    ----------
    config
        The prediction options; models differing in any of them are loaded separately.

    Returns
    -------
    Segmenter
        The same instance for every call with equal options.
    """
    import json

    key = json.dumps(config.to_dict(), sort_keys=True, default=str)
    if key not in _LOADED:
        _LOADED[key] = Segmenter.from_config(config)
    return _LOADED[key]
