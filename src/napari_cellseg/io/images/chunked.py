"""Huge images as chunked arrays: OME-Zarr / Zarr and TIFF read lazily, label Zarrs written.

Nothing here reads a whole image: :func:`open_chunked` gives a :class:`ChunkedImage` whose
:meth:`~ChunkedImage.read` returns one region, from a Zarr array (an OME-Zarr image's full
resolution level, or a plain array) or a TIFF through tifffile's Zarr store (``aszarr``: only
the strips or tiles of the region are decoded). :func:`write_label_zarr` makes an OME-Zarr label
image of the same chunking in a hidden folder beside the destination and moves it into place
only when every chunk is written, so an interrupted run never leaves half a result.

``zarr`` (3.x) and ``ome-zarr`` come with the ``dask`` extra (``pip install
"napari-cellseg[dask]"``); they are imported when a function here is first called.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.outputs import temporary_path

#: Suffixes of the Zarr folders :func:`open_chunked` reads.
ZARR_SUFFIXES = (".zarr",)
#: Axes other than ``y``, ``x`` and ``c`` must have one plane (a 2D image, maybe multichannel).
_PLANE_AXES = {"t", "z"}


@dataclass
class ChunkedImage:
    """A lazily read 2D image (one or more channels).

    Attributes
    ----------
    path
        The file or folder it comes from.
    array
        The array (Zarr, or tifffile's Zarr view of a TIFF); indexed, never read whole.
    axes
        One lower-case letter per axis of ``array`` (``y``, ``x``, ``c``; ``t``/``z`` of size 1).
    chunks
        ``(cy, cx)`` chunk shape of the image plane (the labels get the same).
    """

    path: Path
    array: Any
    axes: str
    chunks: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """``(Y, X)``."""
        return tuple(int(self.array.shape[self.axes.index(a)]) for a in "yx")

    @property
    def name(self) -> str:
        """The base name for outputs (``plate.ome.zarr`` -> ``plate``)."""
        return image_name(self.path)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The region ``[y0:y1, x0:x1]`` as ``(C, h, w)`` in the file's dtype."""
        index = tuple(
            slice(y0, y1) if a == "y" else slice(x0, x1) if a == "x" else slice(None)
            for a in self.axes
        )
        region = np.asarray(self.array[index])
        kept = "".join(a for a in self.axes if a in "cyx")
        region = region.reshape([n for n, a in zip(region.shape, self.axes) if a in "cyx"])
        if "c" not in kept:
            return region[None]
        return np.moveaxis(region, kept.index("c"), 0)


def image_name(path: str | os.PathLike) -> str:
    """The base name of an image file or folder (``plate.ome.zarr`` -> ``plate``)."""
    name = Path(path).name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def is_chunked_source(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a Zarr folder (``*.zarr``, ``*.ome.zarr``)."""
    return str(path).lower().rstrip("/").endswith(ZARR_SUFFIXES)


def open_chunked(path: str | os.PathLike, *, chunk: int = 1024) -> ChunkedImage:
    """Open an OME-Zarr / Zarr image or a TIFF for reading region by region.

    Parameters
    ----------
    path
        An OME-Zarr image (its first, full-resolution level is read), a Zarr array whose axes
        are named (``_ARRAY_DIMENSIONS``) or that is 2D, or a TIFF.
    chunk
        Chunk edge of a TIFF's labels (a Zarr keeps its own chunking).

    Returns
    -------
    ChunkedImage
        The lazy image.

    Raises
    ------
    CellsegError
        If the path is missing or not an image, or the axes are unknown or not one plane.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CellsegError(f"{path} does not exist")
    if is_chunked_source(path):
        array, axes = _open_zarr(path)
        _check_axes(path, array.shape, axes)
        chunks = tuple(int(array.chunks[axes.index(a)]) for a in "yx")
    else:
        array, axes = _open_tiff(path)
        _check_axes(path, array.shape, axes)
        chunks = (chunk, chunk)
    return ChunkedImage(path, array, axes, chunks)


def _open_zarr(path: Path) -> tuple[Any, str]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for what is not a Zarr
        raise CellsegError(f"{path} is not a readable Zarr ({exc})") from exc
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        multiscales = attrs.get("ome", attrs).get("multiscales")
        if not multiscales:
            raise CellsegError(
                f"{path} is a Zarr group without OME-Zarr 'multiscales' metadata; give the "
                "image's array (e.g. {path}/0) or an OME-Zarr image"
            )
        scale = multiscales[0]
        axes = "".join(_axis_name(a) for a in scale.get("axes", []))
        array = node[scale["datasets"][0]["path"]]
        if len(axes) != array.ndim:
            raise CellsegError(
                f"{path}: the OME-Zarr metadata names {len(axes)} axes for a "
                f"{array.ndim}D array; fix its 'axes'"
            )
        return array, axes
    names = node.attrs.get("_ARRAY_DIMENSIONS")
    if names:
        return node, "".join(str(n)[0].lower() for n in names)
    if node.ndim == 2:
        return node, "yx"
    raise CellsegError(
        f"{path}: a {node.ndim}D Zarr array {tuple(node.shape)} without axis names; cellseg "
        "needs to know which axes are y, x and the channels: write it as an OME-Zarr image "
        "(multiscales axes, e.g. c, y, x) or set the array attribute _ARRAY_DIMENSIONS, "
        'e.g. ["c", "y", "x"]'
    )


def pyramid(path: str | os.PathLike, image: ChunkedImage) -> list[Any]:
    """The resolution levels of an OME-Zarr image, full resolution first; ``[image.array]``
    for a plain Zarr array or a TIFF.

    Parameters
    ----------
    path
        What ``image`` was opened from.
    image
        The image (:func:`open_chunked`).

    Returns
    -------
    list
        The level arrays (lazy).
    """
    import zarr

    if not is_chunked_source(path):
        return [image.array]
    node = zarr.open(str(path), mode="r")
    if not isinstance(node, zarr.Group):
        return [image.array]
    attrs = dict(node.attrs)
    datasets = attrs.get("ome", attrs)["multiscales"][0]["datasets"]
    return [node[d["path"]] for d in datasets]


def _axis_name(axis: Any) -> str:
    name = axis["name"] if isinstance(axis, dict) else str(axis)
    return name[0].lower()


def _open_tiff(path: Path) -> tuple[Any, str]:
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            series_axes = tif.series[0].axes
        store = tifffile.imread(path, aszarr=True)
        node = zarr.open(store, mode="r")
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise CellsegError(f"{path} is not a readable TIFF ({exc})") from exc
    if isinstance(node, zarr.Group):  # a pyramid: the first level is the full resolution
        node = node[sorted(node.array_keys())[0]]
    axes = "".join("c" if a in "CS" else a.lower() for a in series_axes)
    return node, axes


def _check_axes(path: Path, shape: tuple[int, ...], axes: str) -> None:
    if "y" not in axes or "x" not in axes or len(set(axes)) != len(axes):
        raise CellsegError(
            f"{path}: axes {axes!r} of shape {tuple(shape)} do not name one y and one x axis; "
            "name them (OME-Zarr axes or _ARRAY_DIMENSIONS)"
        )
    extra = [a for a, n in zip(axes, shape) if a not in "cyx" and not (a in _PLANE_AXES and n == 1)]
    if extra:
        raise CellsegError(
            f"{path}: axes {axes!r} of shape {tuple(shape)} hold more than one 2D image "
            f"(axis {extra[0]!r}); huge-image prediction takes one plane: save each "
            "plane as its own image"
        )


@dataclass(frozen=True)
class LabelZarr:
    """An OME-Zarr label image being written: :func:`write_label_zarr` makes it.

    Attributes
    ----------
    path
        Where the finished image will be.
    location
        The hidden folder it is written in until then; its ``(Y, X)`` uint32 array is
        ``<location>/s0`` (open it from any process; write whole chunks).
    """

    path: Path
    location: Path

    @property
    def array(self) -> Any:
        """The ``(Y, X)`` label array, open for writing."""
        import zarr

        return zarr.open_array(str(self.location / "s0"), mode="r+")


@contextmanager
def write_label_zarr(
    path: str | os.PathLike,
    shape: tuple[int, int],
    chunks: tuple[int, int],
    *,
    replace: bool = False,
) -> Iterator[LabelZarr]:
    """Write a ``(Y, X)`` uint32 OME-Zarr label image atomically.

    The image is made in a hidden folder beside ``path`` (:func:`temporary_path`) and moved
    onto ``path`` when the block succeeds; on an error it is removed and nothing is left.

    Parameters
    ----------
    path
        The destination folder (``*_masks.ome.zarr``).
    replace
        Replace an existing ``path`` (removed only once the new image is complete); without
        it an existing ``path`` is refused.
    shape
        ``(Y, X)``.
    chunks
        ``(cy, cx)``.

    Yields
    ------
    LabelZarr
        The image; its array may be written from other processes.
    """
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    path = Path(path)
    if not path.parent.is_dir():
        raise CellsegError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.exists() and not replace:
        raise CellsegError(f"{path} already exists; nothing was written")
    tmp = temporary_path(path)
    try:
        root = zarr.open_group(str(tmp), mode="w")
        root.create_array(
            "s0", shape=tuple(shape), chunks=tuple(chunks), dtype="uint32", fill_value=0
        )
        yield LabelZarr(path, tmp)
        write_multiscales_metadata(
            root,
            datasets=[{"path": "s0", "coordinateTransformations": [_UNIT_SCALE]}],
            axes=["y", "x"],
            name=path.name,
        )
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise CellsegError(
            f"could not write {path}: {exc}; check the folder and its space"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_UNIT_SCALE = {"type": "scale", "scale": [1.0, 1.0]}


def read_label_zarr(path: str | os.PathLike) -> np.ndarray:
    """The whole ``(Y, X)`` labels of a label image :func:`write_label_zarr` wrote (for tests
    and small images)."""
    return np.asarray(open_chunked(path).read(0, None, 0, None)[0])
