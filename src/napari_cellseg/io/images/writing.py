"""Writing images and label masks (TIFF, PNG, JPEG), atomically.

Files are written through :func:`~napari_cellseg.io.outputs.atomic_path`, so a failed write
never leaves a half-written file behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images.layout import MAX_CHANNELS
from napari_cellseg.io.images.reading import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    TIFF_EXTENSIONS,
    as_labels,
)
from napari_cellseg.io.outputs import atomic_path

_UINT16_MAX = np.iinfo(np.uint16).max
_UINT32_MAX = np.iinfo(np.uint32).max


def write_mask(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write a label matrix atomically (TIFF with deflate compression, or PNG).

    Parameters
    ----------
    path : str or os.PathLike
        Destination ending in ``.tif``/``.tiff`` or ``.png``.
    labels : numpy.ndarray
        Integer labels ``(Y, X)`` (TIFF also takes a ``(Z, Y, X)`` stack), 0 = background.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    CellsegError
        If the labels are not a valid label matrix, do not fit the format (PNG holds at most
        65 535 labels and one 2D matrix), or the file cannot be written. Nothing is written
        then.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MASK_EXTENSIONS:
        raise CellsegError(f"cannot write a mask as {path.name}: use .tif or .png")
    labels = as_labels(labels, source=f"labels for {path}")
    high = int(labels.max()) if labels.size else 0
    if high > _UINT32_MAX:
        raise CellsegError(f"cannot write {path}: label {high} does not fit in 32 bits")
    data = labels.astype(np.uint16 if high <= _UINT16_MAX else np.uint32)
    if suffix == ".png":
        if high > _UINT16_MAX or data.ndim != 2:
            raise CellsegError(
                f"cannot write {path}: PNG holds one 2D mask with at most {_UINT16_MAX} labels "
                f"(got shape {labels.shape}, largest label {high}); save it as .tif instead"
            )
        with atomic_path(path) as tmp:
            Image.fromarray(data).save(tmp, format="PNG")
    else:
        with atomic_path(path) as tmp:
            tifffile.imwrite(
                tmp, data, compression="zlib", predictor=True, photometric="minisblack"
            )
    return path


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image atomically: TIFF (deflate, any dtype and layout), PNG or JPEG.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ending in ``.tif``/``.tiff``, ``.png`` or ``.jpg``/``.jpeg``.
    image : numpy.ndarray
        For TIFF any numeric array (``(Y, X, 3|4)`` uint8/uint16 is stored as RGB(A));
        for PNG a uint8/uint16 ``(Y, X)`` or uint8 ``(Y, X, 3|4)`` array; for JPEG (lossy)
        uint8 ``(Y, X)`` or ``(Y, X, 3)``.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    CellsegError
        If the format cannot hold the array or the file cannot be written.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise CellsegError(f"cannot write {path.name}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    if suffix in TIFF_EXTENSIONS:
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, image, compression="zlib", **_tiff_layout(image))
        return path
    _check_pil_writable(path, image, jpeg=suffix != ".png")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG" if suffix == ".png" else "JPEG")
    return path


def _tiff_layout(image: np.ndarray) -> dict[str, str]:
    if image.ndim == 3 and image.shape[-1] <= MAX_CHANNELS < image.shape[0]:
        if image.shape[-1] in (3, 4) and image.dtype in (np.uint8, np.uint16):
            return {"photometric": "rgb"}
        return {"photometric": "minisblack", "planarconfig": "contig"}
    return {"photometric": "minisblack"}


def _check_pil_writable(path: Path, image: np.ndarray, *, jpeg: bool) -> None:
    grey = image.ndim == 2
    colour = image.ndim == 3 and image.shape[-1] in ((3,) if jpeg else (3, 4))
    dtypes = (np.uint8,) if jpeg or colour else (np.uint8, np.uint16)
    if (grey or colour) and image.dtype in dtypes:
        return
    raise CellsegError(
        f"cannot write an array of shape {image.shape} and dtype {image.dtype} as "
        f"{path.suffix}; save it as .tif instead (any dtype and number of channels)"
    )
