"""Training samples in memory and the crops + targets a network trains on.

This module is torch-free: :class:`CropMaker` runs in data-loader worker processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.families import LabelCrop, get_family
from napari_cellseg.preprocess import Channels, prepare_image

if TYPE_CHECKING:
    from napari_cellseg.io.datasets import Dataset

#: Mean cell diameter of an image by Omnipose's definition: 2(D+1)·mean(EDT) (D=2 here).
DIAMETER_FACTOR = 6.0


@dataclass
class TrainItem:
    """One 2D training sample, ready for cropping.

    Attributes
    ----------
    name
        Where it came from (file name or layer name, plus frame index for stacks).
    image
        float32 (C, Y, X), normalised with :data:`napari_cellseg.preprocess.NORMALIZATION`.
    labels
        int32 (Y, X) instance labels, 0 = background.
    links
        Pairs of label ids that are pieces of one object.
    weights
        Optional DeLTA weight map (Y, X) from a ``wei/`` folder.
    scale
        Rescaling applied to crops so that cells have the configured diameter (1 = none).
    blobs
        Label 1 marks CLB "blobs" (regions too hard to annotate), excluded from the loss.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    links: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    weights: np.ndarray | None = None
    scale: float = 1.0
    blobs: bool = False


def mean_diameter(labels: np.ndarray) -> float:
    """Mean cell diameter of a label image (Omnipose definition, exact for discs).

    Returns 0 for an image without cells.
    """
    from scipy import ndimage as ndi

    fg = labels > 0
    if not fg.any():
        return 0.0
    # Distance inside each cell to its outline (background or another label).
    dist = ndi.distance_transform_edt(fg & _interior(labels))
    return float(DIAMETER_FACTOR * (dist[fg] + 0.5).mean())


def _interior(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 4 neighbours carry the same label (image edge counts as same)."""
    padded = np.pad(labels, 1, mode="edge")
    c = padded[1:-1, 1:-1]
    return (
        (padded[:-2, 1:-1] == c)
        & (padded[2:, 1:-1] == c)
        & (padded[1:-1, :-2] == c)
        & (padded[1:-1, 2:] == c)
    )


def make_items(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    config: TrainConfig,
    *,
    names: Sequence[str] | None = None,
    links: Sequence[Iterable[tuple[int, int]] | None] | None = None,
    weights: Sequence[np.ndarray | None] | None = None,
    blobs: bool | None = None,
) -> list[TrainItem]:
    """Build training items from raw image and label arrays (files or napari layers).

    Stacks (ZYX/TYX images with labels of the same leading shape) give one item per frame.
    ``blobs`` says whether label 1 marks CLB blobs; ``None`` follows ``config.blobs``
    (``auto`` means no: label 1 is an ordinary cell outside CLB folders).

    Raises
    ------
    CellsegError
        For float labels, shape mismatches or channel problems, naming the sample.
    """
    from napari_cellseg.io.datasets import pair_problem

    names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
    if len(images) != len(labels):
        raise CellsegError(f"{len(images)} images but {len(labels)} label arrays")
    if blobs is None:
        blobs = config.blobs == "ignore"
    items: list[TrainItem] = []
    for i, (raw, lab) in enumerate(zip(images, labels)):
        name = names[i]
        lab = np.asarray(lab)
        if not np.issubdtype(lab.dtype, np.integer) and lab.dtype != bool:
            raise CellsegError(
                f"{name}: labels are {lab.dtype}, not integers; convert them to a label matrix "
                "(e.g. Layers > Convert to labels in napari, or np.round(m).astype(np.uint16))"
            )
        if lab.size and lab.min() < 0:
            raise CellsegError(f"{name}: labels contain negative values; labels must be >= 0")
        raw = np.asarray(raw)
        problem = pair_problem(
            raw.shape,
            lab.shape,
            channel_axis=config.channel_axis,
            nchan=None if config.chan else config.nchan,
        )
        if problem:
            raise CellsegError(f"{name}: {problem}")
        frames = prepare_image(raw, Channels.of(config), source=name)
        lab_frames = [lab] if lab.ndim == 2 else list(lab)
        w = None if weights is None else weights[i]
        w_frames = [None] * len(frames) if w is None else ([w] if w.ndim == 2 else list(w))
        pair_links = frozenset(
            (int(min(a, b)), int(max(a, b))) for a, b in ((links[i] if links else None) or ())
        )
        for k, (img, lb, wf) in enumerate(zip(frames, lab_frames, w_frames)):
            label_frame = np.ascontiguousarray(lb, dtype=np.int32)
            scale = 1.0
            if config.diameter > 0:
                diam = mean_diameter(label_frame)
                scale = config.diameter / max(diam, 5.0) if diam > 0 else 1.0
            items.append(
                TrainItem(
                    name=name if len(frames) == 1 else f"{name}[{k}]",
                    image=np.ascontiguousarray(img, dtype=np.float32),
                    labels=label_frame,
                    links=pair_links,
                    weights=None if wf is None else np.asarray(wf, dtype=np.float32),
                    scale=scale,
                    blobs=blobs,
                )
            )
    return items


def discover_folders(path: str | Path, config: TrainConfig) -> list[Dataset]:
    """Discover the dataset(s) of a training or validation folder with the config's options.

    ``path`` may join several folders with ``+`` (CLB).
    """
    from napari_cellseg.io import datasets

    return [
        datasets.discover(
            part,
            config.convention,
            img_filter=config.img_filter,
            mask_filter=config.mask_filter,
            look_one_level_down=config.look_one_level_down,
        )
        for part in str(path).split("+")
    ]


def load_items(path: str | Path, config: TrainConfig) -> list[TrainItem]:
    """Read a training folder (any supported convention) into training items.

    ``path`` may join several folders with ``+`` (CLB).
    """
    from napari_cellseg.io import datasets

    items: list[TrainItem] = []
    for ds in discover_folders(path, config):
        images, labels, names, links, weights = [], [], [], [], []
        for sample in ds.samples:
            images.append(datasets.load_image(sample))
            labels.append(datasets.load_mask(sample))
            names.append(str(sample.image) if sample.page is None else sample.name)
            links.append(datasets.load_links(sample) if config.links else None)
            weights.append(datasets.load_weights(sample))
        blobs = config.blobs == "ignore" or (config.blobs == "auto" and ds.convention == "clb")
        items += make_items(
            images, labels, config, names=names, links=links, weights=weights, blobs=blobs
        )
    if not items:
        raise CellsegError(f"no training samples found in {path}")
    return items


class CropMaker:
    """Turns a training item into one augmented (input, target) pair for a family.

    Parameters
    ----------
    config
        The training options (crop size, augmentation, architecture, blobs handling...).
    augment
        False for validation crops: no warp, no intensity changes.
    """

    def __init__(self, config: TrainConfig, *, augment: bool = True) -> None:
        self.config = config
        self.augment = augment
        self.delta_ops = None
        if config.augment_ops and augment:
            from napari_cellseg.augment import load_augment_ops

            self.delta_ops = load_augment_ops(config.augment_ops)

    def __call__(self, item: TrainItem, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)``: x float32 (C, H, W), y float32 (K, H, W) family targets."""
        from napari_cellseg import augment as aug

        cfg = self.config
        extras = [item.weights] if item.weights is not None else []
        if cfg.trim_method:
            image = aug.trim(item.image, cfg.im_dim, cfg.trim_method, order=1)
            labels = aug.trim(item.labels, cfg.im_dim, cfg.trim_method, order=0)
            extras = [aug.trim(e, cfg.im_dim, cfg.trim_method, order=1) for e in extras]
            # CLB: each sample is seen as itself and as `augments` augmented copies.
            if self.augment and cfg.augments and rng.random() < cfg.augments / (cfg.augments + 1):
                image, labels = list(aug.clb_augment(image, labels, rng, n_augments=1))[-1]
                extras = []  # CLB augmentation does not carry weight maps
        elif self.augment:
            scale_range = (0.75, 1.25) if cfg.diameter > 0 else (0.5, 1.5)
            image, labels, extras, _ = aug.random_warp_crop(
                item.image,
                item.labels,
                cfg.crop_shape,
                rng,
                scale_range=scale_range,
                extras=extras,
                extras_order=[1] * len(extras),
                rescale=item.scale,
            )
        else:
            image, labels, extras, _ = aug.random_warp_crop(
                item.image,
                item.labels,
                cfg.crop_shape,
                rng,
                scale_range=(1.0, 1.0),
                rotate=False,
                flip=False,
                extras=extras,
                extras_order=[1] * len(extras),
                rescale=item.scale,
            )
        if self.augment and self.delta_ops:
            stack = [*image, labels.astype(np.float32), *extras]
            orders = [1] * image.shape[0] + [0] + [1] * len(extras)
            out = aug.delta_augment(stack, self.delta_ops, orders, rng)
            c = image.shape[0]
            image = np.stack(out[:c]).astype(np.float32)
            labels = np.rint(out[c]).astype(np.int32)
            extras = list(out[c + 1 :])
        if self.augment:
            image = aug.intensity_augment(image, rng)
        weights = extras[0] if extras else None
        return np.ascontiguousarray(image, dtype=np.float32), self.targets(labels, weights, item)

    def targets(
        self, labels: np.ndarray, weights: np.ndarray | None, item: TrainItem
    ) -> np.ndarray:
        """Training targets of the configured family for one crop of labels."""
        crop = LabelCrop(labels, weights, item.links, item.blobs)
        return get_family(self.config.architecture).targets(crop, self.config)
