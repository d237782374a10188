"""Tracking training samples: DeLTA's six folders, or built from any labelled time-lapse.

A sample is one cell at frame t-1 (the seed) and what it became at frame t: itself, its two
daughters if it divided, or nothing if it left. The network sees a window centred on the seed:
``[image t, seed mask t-1, image t-1, all cells t]`` and learns the ``mot_dau`` mask (the seed's
cell(s) at t) with DeLTA's :func:`~napari_cellseg.track.weights.tracking_weights`.

Samples built from a sequence share their frames (a 1024 x 1024 movie of 90 frames and 2,000
cells holds its 90 frames once); DeLTA's folders hold one window per sample.

This module is torch-free: :class:`TrackCropMaker` runs in data-loader worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.weights import tracking_weights

if TYPE_CHECKING:
    from napari_cellseg.config import TrainConfig

#: DeLTA's folders of a tracking set, in the order of its ``train_generator_track``.
FOLDERS = ("previmg", "seg", "img", "segall", "mot_dau", "wei")
#: Interpolation order of each of them when augmenting (DeLTA: images 1, masks and weights 0).
ORDERS = {"img": 1, "seg": 0, "previmg": 1, "segall": 0, "mot_dau": 0, "wei": 0}
#: Augmentation of DeLTA's tracking example script, used without ``--augment_ops``.
DEFAULT_OPS: dict[str, Any] = {
    "rotation": 1.0,
    "zoom": 0.15,
    "horizontal_flip": True,
    "vertical_flip": True,
    "illumination_voodoo": True,
    "histogram_voodoo": True,
}


@dataclass
class FramePair:
    """Two consecutive frames of a sequence, shared by the samples of their cells.

    Attributes
    ----------
    name
        Where they come from (``<sequence> t=<t>``).
    prev_image, image
        float32 ``(Y, X)`` normalised images at t-1 and t.
    prev_labels, labels
        int32 ``(Y, X)`` labels at t-1 and t (ids consistent over time for sequences).
    """

    name: str
    prev_image: np.ndarray
    image: np.ndarray
    prev_labels: np.ndarray
    labels: np.ndarray


@dataclass
class TrackItem:
    """One tracking sample.

    Attributes
    ----------
    name
        The sample's name (frame pair and seed id, or the DeLTA file stem).
    pair
        Its frames.
    seed
        Id of the seed cell in ``pair.prev_labels``.
    targets
        Ids in ``pair.labels`` of what the seed became (empty: it vanished).
    centre
        ``(y, x)`` the window is centred on (the seed's centroid).
    mot_dau, weights
        DeLTA folders' own target and weight windows (None for sequence samples, whose
        target comes from ``targets`` and weights are computed per crop).
    """

    name: str
    pair: FramePair
    seed: int
    targets: tuple[int, ...]
    centre: tuple[float, float]
    mot_dau: np.ndarray | None = None
    weights: np.ndarray | None = None

    @property
    def divides(self) -> bool:
        """Whether the seed divided between the two frames."""
        return len(self.targets) == 2


def normalised(frame: np.ndarray, source: str) -> np.ndarray:
    """One greyscale frame normalised as for segmentation (percentiles), float32 ``(Y, X)``."""
    from napari_cellseg.preprocess import Channels, prepare_image

    return prepare_image(np.asarray(frame), Channels(nchan=1), source=source)[0][0]


def movie_diameter(labels: np.ndarray, n_frames: int = 5) -> float:
    """Mean cell diameter of a label time-lapse (median over up to ``n_frames`` frames spread
    over the movie; 0 when it has no cells)."""
    from napari_cellseg.train.samples import mean_diameter

    picks = np.unique(np.linspace(0, len(labels) - 1, min(n_frames, len(labels))).astype(int))
    diameters = [d for d in (mean_diameter(np.asarray(labels[t])) for t in picks) if d > 0]
    return float(np.median(diameters)) if diameters else 0.0


def scale_factor(diameter: float, labels: np.ndarray) -> float:
    """Resize factor that gives a movie's cells the ``diameter`` (1 when 0 or no cells)."""
    if diameter <= 0:
        return 1.0
    found = movie_diameter(labels)
    return diameter / found if found > 0 else 1.0


def rescaled(frame: np.ndarray, factor: float, *, order: int) -> np.ndarray:
    """A ``(Y, X)`` frame resized by ``factor`` (labels: ``order=0``, ids kept)."""
    if factor == 1.0:
        return frame
    from skimage.transform import resize

    shape = tuple(max(1, round(n * factor)) for n in frame.shape)
    out = resize(frame, shape, order=order, preserve_range=True, anti_aliasing=False)
    out = out.astype(frame.dtype)
    if order == 0 and frame.any():
        _keep_every_id(frame, out, factor)
    return out


def _keep_every_id(frame: np.ndarray, small: np.ndarray, factor: float) -> None:
    """Cells too small to survive a downscaling get one pixel at their scaled centroid, so
    that every id of ``frame`` is still in ``small`` (a lost cell would lose its track)."""
    ids = np.unique(frame)
    lost = np.setdiff1d(ids[ids > 0], np.unique(small))
    if not len(lost):
        return
    centres = ndi.center_of_mass(np.ones(frame.shape, np.uint8), frame, lost)
    for cell, (y, x) in zip(lost.tolist(), centres):
        yy = min(max(int((y + 0.5) * factor), 0), small.shape[0] - 1)
        xx = min(max(int((x + 0.5) * factor), 0), small.shape[1] - 1)
        small[yy, xx] = cell


def frame_shape(frame: np.ndarray) -> tuple[int, int]:
    """``(Y, X)`` of an image frame: ``(Y, X)`` or colour ``(Y, X, C)`` with C <= 4."""
    shape = np.shape(frame)
    return tuple(shape[:2]) if len(shape) == 3 and shape[-1] <= 4 else tuple(shape[-2:])


def check_stack(labels: np.ndarray, images: np.ndarray | None, source: str) -> np.ndarray:
    """The labels as an int ``(T, Y, X)`` array, refused with a message naming ``source``."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise CellsegError(
            f"{source}: tracking needs a time-lapse of labels (T, Y, X); this is an array of "
            f"shape {labels.shape}. Open or segment every frame of the movie"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise CellsegError(f"{source}: labels are {labels.dtype}, not integers")
    if images is not None:
        if len(images) != len(labels):
            raise CellsegError(
                f"{source}: {len(images)} image frames but {len(labels)} label frames"
            )
        for t, frame in enumerate(images):
            if frame_shape(frame) != labels.shape[1:]:
                raise CellsegError(
                    f"{source}: frame {t} image is {np.shape(frame)} but its labels are "
                    f"{labels.shape[1:]}; frames of a time-lapse must share one shape"
                )
    return labels


def items_from_sequence(
    images: Sequence[np.ndarray] | np.ndarray,
    labels: np.ndarray,
    tracks: Sequence[Track],
    *,
    name: str = "sequence",
    frames: tuple[int, int] | None = None,
    diameter: float = 0.0,
) -> list[TrackItem]:
    """Samples of a labelled time-lapse: one per cell present at t-1, for every t >= 1.

    Parameters
    ----------
    images
        ``T`` greyscale frames ``(Y, X)``.
    labels
        ``(T, Y, X)`` labels whose ids are track ids (CTC ``man_track`` masks, or a napari
        Labels stack with ids consistent over time).
    tracks
        The track table: a cell ``a`` at t-1 continues as ``a`` at t, or divided into the
        tracks whose parent is ``a`` and that begin at t.
    name
        Prefix of the sample names.
    frames
        ``(first, stop)``: only pairs with ``first <= t-1`` and ``t < stop`` (a cross-validation
        fold over frame ranges); None: all.
    diameter
        Resize the movie so that its cells have this mean diameter (``--diameter``; 0: as is).

    Raises
    ------
    CellsegError
        When images and labels differ in frame count or shape, naming the frame.
    """
    labels = check_stack(labels, images, name)
    children: dict[int, list[int]] = {}
    for t in tracks:
        if t.parent:
            children.setdefault(t.parent, []).append(t.id)
    begins = {t.id: t.begin for t in tracks}
    first, stop = frames or (0, len(labels))
    factor = scale_factor(diameter, labels)
    items: list[TrackItem] = []
    normed: dict[int, np.ndarray] = {}
    scaled: dict[int, np.ndarray] = {}

    def image(k: int) -> np.ndarray:
        if k not in normed:
            normed[k] = rescaled(normalised(images[k], f"{name} frame {k}"), factor, order=1)
        return normed[k]

    def label(k: int) -> np.ndarray:
        if k not in scaled:
            scaled[k] = rescaled(np.asarray(labels[k]).astype(np.int32), factor, order=0)
        return scaled[k]

    for t in range(max(first, 0) + 1, min(stop, len(labels))):
        prev, cur = label(t - 1), label(t)
        ids = np.unique(prev)
        ids = ids[ids > 0]
        if not len(ids):
            continue
        present = set(np.unique(cur).tolist())
        pair = FramePair(f"{name} t={t}", image(t - 1), image(t), prev, cur)
        centres = ndi.center_of_mass(np.ones_like(prev), prev, ids)
        for cell, centre in zip(ids.tolist(), centres):
            if cell in present:
                targets: tuple[int, ...] = (cell,)
            else:
                targets = tuple(c for c in children.get(cell, []) if begins.get(c) == t)
            items.append(TrackItem(f"{pair.name} cell {cell}", pair, cell, targets, tuple(centre)))
    return items


def read_delta_folders(path: str | Path) -> list[TrackItem]:
    """Samples of DeLTA's six folders (``previmg seg img segall mot_dau [wei]``), matched by stem.

    Raises
    ------
    CellsegError
        For a missing folder, files without partners or windows of different shapes, naming
        the file.
    """
    from napari_cellseg.io.images import read_image, read_mask

    root = Path(path)
    missing = [f for f in FOLDERS[:-1] if not (root / f).is_dir()]
    if missing:
        raise CellsegError(
            f"{root} is not a DeLTA tracking set: it lacks {', '.join(f + '/' for f in missing)} "
            f"(a tracking set has {' '.join(f + '/' for f in FOLDERS)}, wei/ optional)"
        )
    stems = {f: files_by_stem(root / f) for f in FOLDERS if (root / f).is_dir()}
    names = sorted(stems["img"])
    for folder in FOLDERS[:-1]:
        lonely = sorted(set(names) ^ set(stems[folder]))
        if lonely:
            raise CellsegError(
                f"{root}: {lonely[0]} is in {'img' if lonely[0] in names else folder}/ but not in "
                f"{folder if lonely[0] in names else 'img'}/; every sample needs one file of the "
                "same stem in each folder"
            )
    items = []
    for stem in names:
        raw = {f: stems[f][stem] for f in FOLDERS if f in stems and stem in stems[f]}
        img = read_image(raw["img"])
        arrays = {
            "img": normalised(img, str(raw["img"])),
            "previmg": normalised(read_image(raw["previmg"]), str(raw["previmg"])),
            **{f: read_mask(raw[f]) > 0 for f in ("seg", "segall", "mot_dau")},
        }
        shapes = {f: a.shape for f, a in arrays.items()}
        if len(set(shapes.values())) > 1:
            raise CellsegError(f"{root}: the files of sample {stem} differ in shape: {shapes}")
        weights = None
        if "wei" in raw:
            weights = read_image(raw["wei"]).astype(np.float32)
            if weights.shape != arrays["img"].shape:
                raise CellsegError(
                    f"{raw['wei']} is {weights.shape} but the sample's windows are "
                    f"{arrays['img'].shape}; remake wei/ with `cellseg make-weights {root}`"
                )
        segall = ndi.label(arrays["segall"])[0].astype(np.int32)
        seed = arrays["seg"].astype(np.int32)
        pair = FramePair(stem, arrays["previmg"], arrays["img"], seed, segall)
        centre = tuple((np.asarray(seed.shape) - 1) / 2)
        items.append(
            TrackItem(
                stem,
                pair,
                1,
                (),
                centre,
                mot_dau=arrays["mot_dau"],
                weights=weights,
            )
        )
    if not items:
        raise CellsegError(f"{root}: img/ holds no images")
    return items


def files_by_stem(folder: Path) -> dict[str, Path]:
    """The files of ``folder`` by stem, hidden files left out (DeLTA matches by stem)."""
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.name[0] != "."}


def load_track_items(path: str | Path, config: TrainConfig | None = None) -> list[TrackItem]:
    """Tracking samples of a folder: DeLTA's six folders, or a Cell Tracking Challenge sequence
    (``01/`` with ``01_GT/TRA`` beside it, or the ``01_GT/TRA`` folder with the images found).

    ``path`` may join several folders with ``+``.
    """
    items: list[TrackItem] = []
    for part in str(path).split("+"):
        root = Path(part)
        if (root / "img").is_dir() and (root / "mot_dau").is_dir():
            items += read_delta_folders(root)
            continue
        from napari_cellseg.track import folders

        seq = folders.read_sequence(root)
        if seq.images is None or seq.labels is None or seq.tracks is None:
            raise CellsegError(
                f"{root}: a tracking set needs images, labels and a track table; found "
                f"{'no images' if seq.images is None else 'no tracking ground truth'}"
            )
        diameter = config.diameter if config is not None else 0.0
        items += items_from_sequence(
            seq.images, seq.labels, seq.tracks, name=seq.name, diameter=diameter
        )
    if not items:
        raise CellsegError(f"no tracking samples found in {path}")
    return items


def window_box(
    centre: Sequence[float], size: tuple[int, int], shape: tuple[int, int]
) -> tuple[int, int]:
    """Top-left corner of a ``size`` window centred on ``centre``, moved inside the image.

    Where the image is smaller than the window the corner is negative (the window is padded).
    """
    corner = []
    for c, s, n in zip(centre, size, shape):
        top = int(round(c - s / 2))
        corner.append(min(max(top, 0), n - s) if n >= s else -((s - n) // 2))
    return corner[0], corner[1]


def cut(array: np.ndarray, corner: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The ``size`` window at ``corner`` of a ``(Y, X)`` array, zero outside it."""
    out = np.zeros(size, array.dtype)
    y0, x0 = corner
    sy = slice(max(y0, 0), min(y0 + size[0], array.shape[0]))
    sx = slice(max(x0, 0), min(x0 + size[1], array.shape[1]))
    out[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0] = array[sy, sx]
    return out


def network_input(
    pair: FramePair,
    seed: int,
    prev_corner: tuple[int, int],
    corner: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """The 4-channel window ``[image t, seed t-1, image t-1, cells t]``, float32.

    ``seed`` is the seed's id in ``pair.prev_labels``; frame t's window may sit elsewhere than
    frame t-1's (training jitters it to mimic drift).
    """
    return np.stack(
        [
            cut(pair.image, corner, size),
            (cut(pair.prev_labels, prev_corner, size) == seed).astype(np.float32),
            cut(pair.prev_image, prev_corner, size),
            cut(pair.labels > 0, corner, size).astype(np.float32),
        ]
    )


class TrackCropMaker:
    """Turns a tracking sample into one augmented ``(x, y)`` pair.

    ``x`` is float32 ``(4, H, W)`` (see :func:`network_input`), ``y`` float32 ``(2, H, W)``:
    the ``mot_dau`` mask and its weights.

    Parameters
    ----------
    config
        Training options: the window is ``--tyx``, the drift jitter ``--track_shift``,
        augmentation ``--augment_ops`` (DeLTA's tracking defaults without it).
    augment
        False for validation: no jitter, no augmentation.
    """

    def __init__(self, config: TrainConfig, *, augment: bool = True) -> None:
        self.size = config.crop_shape
        self.shift = int(config.track_shift) if augment else 0
        self.ops: dict[str, Any] | None = None
        if augment:
            from napari_cellseg.augment import load_augment_ops

            ops = load_augment_ops(config.augment_ops) if config.augment_ops else DEFAULT_OPS
            self.ops = dict(ops)
            if self.size[0] != self.size[1]:  # a 90 degree turn would change the window shape
                self.ops.pop("rotations_90d", None)

    def __call__(self, item: TrackItem, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)`` for one sample."""
        from napari_cellseg.augment import delta_augment

        pair, size = item.pair, self.size
        shape = pair.labels.shape
        prev_corner = window_box(item.centre, size, shape)
        jitter = rng.integers(-self.shift, self.shift + 1, 2) if self.shift else (0, 0)
        corner = window_box(np.add(item.centre, jitter), size, shape)
        x = network_input(pair, item.seed, prev_corner, corner, size)
        if item.mot_dau is not None:
            target = cut(item.mot_dau, corner, size)
        else:
            target = cut(np.isin(pair.labels, item.targets), corner, size)
        weights = None if item.weights is None else cut(item.weights, corner, size)
        if self.ops:
            stack = [x[0], x[1], x[2], x[3], target.astype(np.float32)]
            orders = [ORDERS["img"], ORDERS["seg"], ORDERS["previmg"], ORDERS["segall"], 0]
            if weights is not None:
                stack.append(weights)
                orders.append(ORDERS["wei"])
            out = delta_augment(stack, self.ops, orders, rng)
            x = np.stack(out[:4]).astype(np.float32)
            target = out[4] > 0.5
            weights = out[5] if weights is not None else None
        if weights is None:
            weights = tracking_weights(target, x[3])
        y = np.stack([target.astype(np.float32), np.asarray(weights, np.float32)])
        return np.ascontiguousarray(x, np.float32), y


def write_tracking_set(
    items: Sequence[TrackItem],
    out: str | Path,
    size: tuple[int, int],
    *,
    weights: bool = True,
    overwrite: bool = False,
) -> int:
    """Write samples as DeLTA's six folders (``previmg seg img segall mot_dau [wei]``).

    Each sample is its window of ``size`` centred on the seed (no jitter, no augmentation):
    images as float32 (normalised), masks as uint8 0/255, weights as float32
    (:func:`~napari_cellseg.track.weights.tracking_weights`). Names are
    ``<sequence>_t<NNN>_cell<NNNNN>.tif``.

    Returns
    -------
    int
        The number of samples written.

    Raises
    ------
    CellsegError
        When a file would be replaced without ``overwrite`` (nothing is written then).
    """
    from napari_cellseg.io.images import write_image
    from napari_cellseg.io.outputs import refuse_existing

    root = Path(out)
    folders = FOLDERS if weights else FOLDERS[:-1]
    names = [_sample_file(it) for it in items]
    refuse_existing(
        [root / f / n for f in folders for n in names], overwrite=overwrite, what="sample file"
    )
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for item, name in zip(items, names):
        corner = window_box(item.centre, size, item.pair.labels.shape)
        x = network_input(item.pair, item.seed, corner, corner, size)
        if item.mot_dau is not None:
            target = cut(item.mot_dau, corner, size)
        else:
            target = cut(np.isin(item.pair.labels, item.targets), corner, size)
        arrays = {
            "img": x[0],
            "seg": (x[1] > 0).astype(np.uint8) * 255,
            "previmg": x[2],
            "segall": (x[3] > 0).astype(np.uint8) * 255,
            "mot_dau": target.astype(np.uint8) * 255,
        }
        if weights:
            arrays["wei"] = tracking_weights(target, x[3])
        for folder, array in arrays.items():
            write_image(root / folder / name, array)
    return len(items)


def _sample_file(item: TrackItem) -> str:
    """``<sequence>_t<NNN>_cell<NNNNN>.tif`` from a sequence sample's name."""
    if item.mot_dau is not None:  # a DeLTA sample keeps its stem
        return f"{item.name}.tif"
    sequence, _, rest = item.pair.name.rpartition(" t=")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in sequence) or "sequence"
    return f"{safe}_t{int(rest):03d}_cell{item.seed:05d}.tif"
