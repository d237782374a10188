"""Tiled inference and mask reconstruction for every model family.

>>> seg = Segmenter.from_file("model.pt")          # doctest: +SKIP
>>> result = seg.segment(image)                     # doctest: +SKIP
>>> result.labels                                   # doctest: +SKIP

The network runs on overlapping tiles (batched, blended with a smooth window) so its working
memory is bounded by the tile size; the reconstruction (:mod:`napari_cellseg.reconstruction`)
runs on the blended outputs, block by block for ``omni`` models, and can be re-run with other
parameters without running the network again. Beyond the working memory, an image costs the
full-size arrays of its outputs and labels: an 8192x8192 image segments in about 3 GB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.preprocess import Channels, prepare_image
from napari_cellseg.runtime import autocast_dtype, pick_device

if TYPE_CHECKING:
    from napari_cellseg.io.datasets import Dataset, Sample

#: Reconstruction parameters per family and their defaults.
POSTPROCESS_DEFAULTS: dict[str, dict[str, Any]] = {
    "omni": {"mask_threshold": 0.0, "flow_threshold": 0.4, "niter": None, "min_size": 15},
    "unet": {"threshold": 0.5, "min_size": 15},
    "dcan": {"threshold": 0.5, "min_size": 15},
}


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
        training = dict(meta.get("training", {}))
        training.pop("args_load_path", None)
        cfg = (
            TrainConfig.from_dict(
                {k: v for k, v in training.items() if k in TrainConfig.__dataclass_fields__}
            )
            if training
            else TrainConfig(architecture=spec.arch, nchan=spec.nchan)
        )
        cfg.architecture, cfg.nchan, cfg.nclasses = spec.arch, spec.nchan, spec.nclasses
        self.config = cfg

    @classmethod
    def from_file(cls, model: str | Path, **kwargs: Any) -> Segmenter:
        """Load a model file, the yaml beside it, or a built-in model by name."""
        from napari_cellseg.models.builtin import resolve_model
        from napari_cellseg.models.checkpoint import load_model

        path = resolve_model(model)
        net, ckpt = load_model(path)
        return cls(net, ckpt.spec, ckpt.meta, name=Path(path).stem, **kwargs)

    @property
    def arch(self) -> str:
        """Model family: ``omni``, ``unet`` or ``dcan``."""
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
        config = self.config
        if channel_axis is not None:
            config = replace(config, channel_axis=channel_axis)
        return prepare_image(np.asarray(raw), Channels.of(config), source=source)

    def network(
        self, image: np.ndarray, *, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Blended network outputs (K, Y, X) float32 for one normalised (C, Y, X) image.

        The image is resized by :attr:`scale` first and the outputs resized back, so they always
        have the image's shape; distances are converted back to the image's pixels.
        """
        c, h, w = image.shape
        if c != self.spec.nchan:
            raise CellsegError(
                f"the image has {c} channel(s) but model {self.name} takes {self.spec.nchan}"
            )
        s = self.scale
        if s == 1.0:
            return self._tiled(image, progress)
        size = (max(16, round(h * s)), max(16, round(w * s)))
        out = _resize(self._tiled(_resize(image, size), progress), (h, w))
        if self.arch == "omni":
            out[2] /= size[0] / h  # distances in the image's pixels
        return out

    @torch.no_grad()
    def _tiled(self, image: np.ndarray, progress: Callable[[int, int], None] | None) -> np.ndarray:
        h, w = image.shape[1:]
        t, k = self.tile, self.spec.divisor()
        th, tw = min(t, _round_up(h, 16)), min(t, _round_up(w, 16))
        # pad to the network's grid too, so that every tile starts on it like the whole image
        pad_h, pad_w = max(th, _round_up(h, k)) - h, max(tw, _round_up(w, k)) - w
        if pad_h or pad_w:
            image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
        H, W = image.shape[1:]
        starts = [
            (y, x)
            for y in _tile_starts(H, th, self.overlap, k)
            for x in _tile_starts(W, tw, self.overlap, k)
        ]
        window = _blend_window((th, tw))
        batch = self.batch_size or max(1, TILE_PIXELS_PER_BATCH // (th * tw))
        acc = np.zeros((self.spec.n_outputs(), H, W), np.float32)
        norm = np.zeros((H, W), np.float32)
        for i in range(0, len(starts), batch):
            chunk = starts[i : i + batch]
            x = torch.from_numpy(np.stack([image[:, y : y + th, x0 : x0 + tw] for y, x0 in chunk]))
            x = x.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=self.amp_dtype is not None,
            ):
                out = self.model(x)
            out = out.float().cpu().numpy()
            for (y, x0), o in zip(chunk, out):
                acc[:, y : y + th, x0 : x0 + tw] += o * window
                norm[y : y + th, x0 : x0 + tw] += window
            if progress is not None:
                progress(min(i + batch, len(starts)), len(starts))
        acc /= norm
        return acc[:, :h, :w]

    def named_outputs(self, raw_out: np.ndarray) -> dict[str, np.ndarray]:
        """Split raw network outputs into named maps (probabilities where applicable)."""
        if self.arch == "omni":
            from napari_cellseg.targets.omni import DIST_SCALE

            out = {"flow": raw_out[:2], "dist": raw_out[2] * DIST_SCALE}
            if raw_out.shape[0] > 3:
                out["boundary"] = _sigmoid(raw_out[3])
            return out
        if self.arch == "unet":
            return {"prob": _sigmoid(raw_out[0])}
        act = self.meta.get("dcan_final_act", self.config.dcan_final_act)
        probs = _sigmoid(raw_out) if act == "sigmoid" else (np.tanh(raw_out) + 1) / 2
        return {"object": probs[0], "contour": probs[1]}

    # -- reconstruction ---------------------------------------------------------------------
    def reconstruct(self, outputs: dict[str, np.ndarray], **params: Any) -> np.ndarray:
        """Instance labels from named outputs; ``params`` override :data:`POSTPROCESS_DEFAULTS`."""
        from napari_cellseg import reconstruction as pp

        kw = {
            **POSTPROCESS_DEFAULTS[self.arch],
            **{k: v for k, v in params.items() if v is not None or k == "niter"},
        }
        unknown = set(kw) - set(POSTPROCESS_DEFAULTS[self.arch])
        if unknown:
            raise CellsegError(
                f"{', '.join(sorted(unknown))} do(es) not apply to {self.arch} models; "
                f"their options are {', '.join(POSTPROCESS_DEFAULTS[self.arch])}"
            )
        if self.arch == "omni":
            labels = pp.omni_masks(
                outputs["flow"],
                outputs["dist"],
                outputs.get("boundary"),
                device=str(self.device) if self.device.type == "cuda" else "cpu",
                **kw,
            )
        elif self.arch == "unet":
            labels = pp.unet_masks(outputs["prob"], **kw)
        else:
            labels = pp.dcan_masks(outputs["object"], outputs["contour"], **kw)
        return _compact_dtype(labels)

    def segment(self, image: np.ndarray, **params: Any) -> Segmentation:
        """Segment one normalised (C, Y, X) image."""
        outputs = self.named_outputs(self.network(image))
        return Segmentation(self.reconstruct(outputs, **params), outputs)

    def segment_raw(
        self,
        raw: np.ndarray,
        *,
        channel_axis: int | None = None,
        source: str = "image",
        **params: Any,
    ) -> Iterator[Segmentation]:
        """Segment a raw 2D image or stack frame by frame (one :class:`Segmentation` each)."""
        for frame in self.prepare(raw, channel_axis=channel_axis, source=source):
            yield self.segment(frame, **params)


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
        Reconstruction parameters (see :data:`POSTPROCESS_DEFAULTS`).

    Yields
    ------
    sample, frame_index, frame, segmentation
        The sample, the frame's index in its file (0 for a 2D image), the normalised
        ``(C, Y, X)`` frame and its :class:`Segmentation`.
    """
    from napari_cellseg.io.datasets import load_image

    for sample in dataset.samples:
        raw = load_image(sample)
        for i, frame in enumerate(
            seg.prepare(raw, channel_axis=channel_axis, source=str(sample.image))
        ):
            yield sample, i, frame, seg.segment(frame, **params)


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
        Reconstruction parameters.

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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (np.tanh(0.5 * x) + 1)).astype(np.float32)


def _compact_dtype(labels: np.ndarray) -> np.ndarray:
    top = int(labels.max()) if labels.size else 0
    return labels.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)
