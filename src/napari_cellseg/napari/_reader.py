"""napari readers: images, ``*_masks`` label files, ``*_links.txt`` files, OME-Zarr / Zarr
images (lazily), training folders and Cell Tracking Challenge folders (a tracking ground truth
or result, with its Tracks layer).

Each ``get_*`` function decides from the path alone (a few ``stat`` calls at most) and
returns None for paths it does not handle. The reader functions never raise for bad input: a
:class:`~napari_cellseg.errors.CellsegError` becomes a napari error notification that names
the file, and the reader returns ``[(None,)]`` ("claimed, nothing added"). Only numpy and the
core ``io`` modules are imported here, never torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error, show_warning

from napari_cellseg.errors import CellsegError
from napari_cellseg.io import datasets
from napari_cellseg.io.images import is_stack, read_image, read_mask, to_cyx
from napari_cellseg.io.links import links_path_for, read_links
from napari_cellseg.napari._layers import LayerData, as_layer_links, labels_layer, links_layer

ReaderFunction = Callable[[str], list[Any]]
PathOrPaths = str | list[str]

MASK_SUFFIX = "_masks"
LINKS_SUFFIX = "_links.txt"
MASK_EXTENSIONS = (".tif", ".tiff", ".png")
IMAGE_EXTENSIONS = (".tif", ".tiff")
#: Markers of folders that are zarr stores rather than training folders.
ZARR_MARKERS = (".zarray", ".zgroup", ".zattrs", "zarr.json")


def get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Return the reader for one ``.tif``/``.tiff`` image or one ``*_masks`` label file.

    Parameters
    ----------
    path
        A file path; lists (stacks of files) are left to other readers.

    Returns
    -------
    callable or None
        :func:`read_masks` for ``*_masks.tif|tiff|png``, :func:`read_image_file` for other
        ``.tif``/``.tiff`` files, otherwise None.
    """
    if not isinstance(path, str):
        return None
    name = os.path.basename(path)
    stem, ext = os.path.splitext(name)
    ext = ext.lower()
    if stem.endswith(MASK_SUFFIX) and ext in MASK_EXTENSIONS:
        return read_masks
    if ext in IMAGE_EXTENSIONS:
        return read_image_file
    return None


def get_zarr_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Return :func:`read_zarr` for a ``*.zarr`` folder (OME-Zarr or Zarr array), else None.

    Parameters
    ----------
    path
        A folder path.

    Returns
    -------
    callable or None
        The reader function.
    """
    if isinstance(path, str) and os.path.isdir(path) and path.rstrip("/\\").endswith(".zarr"):
        return read_zarr
    return None


def get_links_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Return :func:`read_links_file` for one ``*_links.txt`` file, else None.

    Parameters
    ----------
    path
        A file path.

    Returns
    -------
    callable or None
        The reader function.
    """
    if isinstance(path, str) and path.endswith(LINKS_SUFFIX) and not os.path.isdir(path):
        return read_links_file
    return None


def get_folder_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Return :func:`read_ctc_folder` for a CTC tracking folder (:func:`is_ctc_tracking`),
    :func:`read_folder` for another folder that is not a zarr store, else None.

    Whether the folder holds training pairs is decided when reading, so that a folder without
    any gets a message saying what was expected instead of a silent refusal.

    Parameters
    ----------
    path
        A folder path.

    Returns
    -------
    callable or None
        The reader function.
    """
    if not isinstance(path, str) or not os.path.isdir(path):
        return None
    if path.rstrip("/\\").lower().endswith(".zarr"):
        return None
    if any(os.path.exists(os.path.join(path, marker)) for marker in ZARR_MARKERS):
        return None
    if is_ctc_tracking(path):
        return read_ctc_folder
    return read_folder


def is_ctc_tracking(path: str) -> bool:
    """Whether a folder is a CTC tracking folder, from three ``stat`` calls at most.

    A result folder (``res_track.txt``), a tracking ground truth ``01_GT/TRA``
    (``man_track.txt``), or a sequence ``01`` with ``01_GT/TRA`` beside it. Other CTC folders
    (a dataset root, ``01_GT``, a sequence with segmentation ground truth only) are training
    folders (:func:`read_folder`).

    Parameters
    ----------
    path
        A folder.

    Returns
    -------
    bool
        Whether :func:`read_ctc_folder` reads it.
    """
    from napari_cellseg.track.ctc import GT_TABLE, RES_TABLE

    folder = Path(path)
    if (folder / RES_TABLE).is_file() or (folder / GT_TABLE).is_file():
        return True
    name = folder.resolve().name
    return name.isdigit() and (folder.resolve().with_name(f"{name}_GT") / "TRA").is_dir()


def _reported(what: str) -> Callable[[Callable[[str], list[Any]]], ReaderFunction]:
    """Turn a CellsegError raised by a reader into an error notification and ``[(None,)]``."""

    def decorate(read: Callable[[str], list[Any]]) -> ReaderFunction:
        @wraps(read)
        def reader(path: str) -> list[Any]:
            try:
                return read(path)
            except CellsegError as err:
                show_error(f"CellSeg could not open {what} {path}: {err}")
                return [(None,)]  # claimed, nothing to add

        return reader

    return decorate


@_reported("the image")
def read_image_file(path: str) -> list[LayerData]:
    """Read an image: one layer, or one layer per channel (CYX/YXC guessed as in the core).

    Parameters
    ----------
    path
        A ``.tif``/``.tiff`` file.

    Returns
    -------
    list of tuple
        Image layer data; stacks (ZYX/TYX) stay one layer with a slider.
    """
    raw = read_image(path)
    name = Path(path).stem
    if is_stack(raw):
        return [(raw, {"name": name}, "image")]
    cyx = to_cyx(raw).astype(raw.dtype, copy=False)
    if cyx.shape[0] == 1:
        return [(cyx[0], {"name": name}, "image")]
    names = [f"{name} [ch{i}]" for i in range(cyx.shape[0])]
    return [(cyx, {"name": names, "channel_axis": 0, "blending": "additive"}, "image")]


@_reported("the Zarr image")
def read_zarr(path: str) -> list[LayerData]:
    """Open an OME-Zarr or Zarr image lazily: nothing is read until napari draws it.

    An image becomes an Image layer (multiscale when the OME-Zarr has several levels; one
    layer per channel), a ``*_masks.ome.zarr`` label image a Labels layer. Each keeps its path
    as the layer's source, from which the Segment widget segments it block by block.

    Parameters
    ----------
    path
        A ``*.zarr`` folder (needs the ``dask`` extra: ``zarr``, ``dask``).

    Returns
    -------
    list of tuple
        One layer's data.
    """
    try:
        import dask.array as da
    except ImportError as exc:
        raise CellsegError('needs the dask extra: pip install "napari-cellseg[dask]"') from exc
    from napari_cellseg.io.images.chunked import image_name, open_chunked, pyramid

    image = open_chunked(path)
    plane = tuple(0 if a in "tz" else slice(None) for a in image.axes)  # t/z of size 1
    kept = "".join(a for a in image.axes if a in "cyx")
    levels = [da.from_zarr(level)[plane] for level in pyramid(path, image)]
    if "c" in kept:
        levels = [da.moveaxis(level, kept.index("c"), 0) for level in levels]
        if levels[0].shape[0] == 1:
            levels = [level[0] for level in levels]
    name = image_name(path)
    meta: dict[str, Any] = {"name": name, "multiscale": len(levels) > 1}
    data: Any = levels if len(levels) > 1 else levels[0]
    if name.endswith(MASK_SUFFIX):
        return [(data, meta, "labels")]
    if levels[0].ndim == 3:  # channels first
        names = [f"{name} [ch{i}]" for i in range(levels[0].shape[0])]
        meta.update(name=names, channel_axis=0, blending="additive")
    return [(data, meta, "image")]


@_reported("the mask")
def read_masks(path: str) -> list[LayerData]:
    """Read a ``*_masks`` label file as a Labels layer, with its ``*_links.txt`` if present.

    Parameters
    ----------
    path
        A ``*_masks.tif|tiff|png`` file.

    Returns
    -------
    list of tuple
        The Labels layer data, plus a Shapes layer of linked pairs when there are links.
        Links that do not match the mask are reported and left out; the mask still opens.
    """
    labels = read_mask(path)
    name = Path(path).stem
    links_file = Path(links_path_for(path))
    links: Any = set()
    if links_file.is_file():
        try:
            links = as_layer_links(labels, read_links(links_file, labels=labels))
        except CellsegError as err:
            show_warning(f"CellSeg opened {path} without its links: {err}")
    layers = [labels_layer(labels, name, links)]
    if links:
        layers.append(links_layer(labels, links, _links_name(name)))
    return layers


@_reported("the links file")
def read_links_file(path: str) -> list[Any]:
    """Read a ``*_links.txt`` file, attach it to its labels and draw the linked pairs.

    The links belong to the Labels layer ``<base>_masks`` if the current viewer has one (they
    are stored in its metadata); otherwise the mask file ``<base>_masks.tif|tiff|png`` beside
    the links file is opened with them.

    Parameters
    ----------
    path
        A ``*_links.txt`` file.

    Returns
    -------
    list of tuple
        A Shapes layer of linked pairs (and the Labels layer when it was read from disk).

    Raises
    ------
    CellsegError
        (reported, not raised) if no matching labels exist or the links do not fit them.
    """
    base = os.path.basename(path)[: -len(LINKS_SUFFIX)]
    layer = _open_labels_layer(base + MASK_SUFFIX)
    if layer is not None:
        labels = np.asarray(layer.data)
        links = as_layer_links(labels, read_links(path, labels=labels))
        layer.metadata["links"] = links
        return [links_layer(labels, links, _links_name(layer.name))]
    folder = Path(path).parent
    for ext in MASK_EXTENSIONS:
        mask = folder / f"{base}{MASK_SUFFIX}{ext}"
        if mask.is_file():
            labels = read_mask(mask)
            links = as_layer_links(labels, read_links(path, labels=labels))
            links_data = links_layer(labels, links, _links_name(mask.stem))
            return [labels_layer(labels, mask.stem, links), links_data]
    raise CellsegError(
        f"no labels to attach the links to: neither a Labels layer '{base}{MASK_SUFFIX}' "
        f"nor a file {base}{MASK_SUFFIX}.tif/.tiff/.png in {folder}; open the mask first"
    )


def _open_labels_layer(name: str) -> Any:
    """The current viewer's 2D (or stacked 2D) Labels layer called ``name``, if any."""
    from napari.layers import Labels
    from napari.viewer import current_viewer

    viewer = current_viewer()
    if viewer is None or name not in viewer.layers:
        return None
    layer = viewer.layers[name]
    return layer if isinstance(layer, Labels) and layer.ndim in (2, 3) else None


@_reported("the training folder")
def read_folder(path: str) -> list[LayerData]:
    """Read every image/mask pair of a training folder as one image and one labels stack.

    The convention (omnipose, delta, clb, ctc) is recognised by
    :func:`napari_cellseg.io.datasets.discover`. Sample ``i`` is frame ``i`` of both layers;
    samples smaller than the largest are padded with zeros at the bottom/right.

    Parameters
    ----------
    path
        A folder.

    Returns
    -------
    list of tuple
        An image stack (one layer per channel) and a labels stack whose metadata holds the
        sample names, the convention and the links of each frame.
    """
    dataset = datasets.discover(path)
    for warning in dataset.warnings:
        show_warning(f"CellSeg, {path}: {warning}")
    datasets.check_shapes(dataset)
    samples = dataset.samples
    loaded = [datasets.load_sample(sample) for sample in samples]
    images = [to_cyx(image) for image, _, _ in loaded]
    masks = [labels for _, labels, _ in loaded]
    for sample, mask in zip(samples, masks):
        if mask.ndim != 2:
            raise CellsegError(
                f"sample {sample.name}: the mask {sample.mask} is a stack of shape {mask.shape}; "
                "open that file on its own"
            )
    nchan = {image.shape[0] for image in images}
    if len(nchan) > 1:
        raise CellsegError(
            f"the images have different numbers of channels ({sorted(nchan)}); keep one "
            "channel layout per training folder"
        )
    height = max(m.shape[0] for m in masks)
    width = max(m.shape[1] for m in masks)
    if any(m.shape != (height, width) for m in masks):
        show_warning(
            f"CellSeg, {path}: the samples differ in size; smaller ones are padded with zeros "
            f"to {height}x{width} to show them as one stack"
        )
    image_stack = np.zeros((len(samples), nchan.pop(), height, width), np.float32)
    label_stack = np.zeros((len(samples), height, width), np.result_type(*masks))
    for i, (image, mask) in enumerate(zip(images, masks)):
        image_stack[i, :, : image.shape[1], : image.shape[2]] = image
        label_stack[i, : mask.shape[0], : mask.shape[1]] = mask
    links = {i: found for i, (_, _, found) in enumerate(loaded) if found}

    name = Path(path).name
    if image_stack.shape[1] == 1:
        image_data = (image_stack[:, 0], {"name": f"{name} images"}, "image")
    else:
        names = [f"{name} [ch{c}]" for c in range(image_stack.shape[1])]
        image_data = (image_stack, {"name": names, "channel_axis": 1}, "image")
    labels_data = labels_layer(label_stack, f"{name}_masks", links)
    labels_data[1].setdefault("metadata", {}).update(
        samples=[s.name for s in samples], convention=dataset.convention
    )
    layers = [image_data, labels_data]
    if links:
        layers.append(links_layer(label_stack, links, _links_name(f"{name}_masks")))
    return layers


def _links_name(labels_name: str) -> str:
    return f"{labels_name.removesuffix(MASK_SUFFIX)}_links"


@_reported("the Cell Tracking Challenge folder")
def read_ctc_folder(path: str) -> list[LayerData]:
    """Read a CTC tracking ground truth or result: the images, the labels and their tracks.

    Parameters
    ----------
    path
        A sequence ``01`` with ``01_GT/TRA`` beside it, a ``01_GT/TRA`` folder, or a result
        folder (``maskNNN.tif`` + ``res_track.txt``, with the images of ``01`` when it is
        ``01_RES``); see :func:`napari_cellseg.track.folders.read_sequence`.

    Returns
    -------
    list of tuple
        The image stack (when the frames are found), a Labels stack ``"<folder> tracked"``
        whose ids are track ids and whose ``metadata["tracks"]`` holds the track table (the
        Track widget corrects it), and a Tracks layer ``"<folder> tracks"`` (divisions as its
        graph).
    """
    from napari_cellseg.track.ctc import GT_TABLE, RES_TABLE
    from napari_cellseg.track.folders import read_sequence
    from napari_cellseg.track.table import tracks_layer_data

    sequence = read_sequence(path)
    if sequence.labels is None or sequence.tracks is None:
        raise CellsegError("no tracking ground truth or result found")
    folder = Path(path).resolve()
    if (folder / RES_TABLE).is_file():
        label = folder.name
    elif (folder / GT_TABLE).is_file():  # 01_GT/TRA
        label = folder.parent.name if folder.name == "TRA" else folder.name
    else:  # a sequence: its labels are the ground truth's
        label = f"{folder.name}_GT"
    layers: list[LayerData] = []
    images = sequence.images
    if images is not None:
        meta: dict[str, Any] = {"name": f"{sequence.name} images"}
        if images.ndim == 4:
            meta["rgb"] = images.shape[-1] in (3, 4)
            if not meta["rgb"]:
                meta["channel_axis"] = 3
                meta["name"] = [f"{sequence.name} [ch{c}]" for c in range(images.shape[-1])]
        layers.append((images, meta, "image"))
    labels, tracks = sequence.labels, sorted(sequence.tracks)
    tracks_name = f"{label} tracks"
    # the keys of napari.track.result (not imported here: it brings the widget's Qt modules)
    metadata = {"tracks": tracks, "tracks_layer": tracks_name}
    layers.append((labels, {"name": f"{label} tracked", "metadata": metadata}, "labels"))
    data, graph = tracks_layer_data(labels, tracks)
    if len(data):
        layers.append((data, {"name": tracks_name, "graph": graph, "tail_length": 10}, "tracks"))
    return layers
