"""Reading images and label masks (TIFF, PNG, JPEG), and the check that makes a label matrix.

Everything a user can get wrong with a file (missing, unknown extension, truncated or not an
image at all, float or colour masks) raises :class:`~napari_cellseg.errors.CellsegError` with a
message that names the file and says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images.layout import MAX_CHANNELS

TIFF_EXTENSIONS = (".tif", ".tiff")
PIL_EXTENSIONS = (".png", ".jpg", ".jpeg")
IMAGE_EXTENSIONS = TIFF_EXTENSIONS + PIL_EXTENSIONS
MASK_EXTENSIONS = (".tif", ".tiff", ".png")

_INT32_MAX = np.iinfo(np.int32).max
_PIL_TO_RGB = ("CMYK", "YCbCr", "LAB", "HSV")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file in its native dtype and layout.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` (any compression imagecodecs decodes, e.g. LZW, deflate),
        ``.png`` or ``.jpg``/``.jpeg`` file.

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` for greyscale, ``(Y, X, 3|4)`` for RGB(A), and for multi-page TIFF stacks
        ``(Z/T, Y, X[, C])`` (or the layout stored in the file's ImageJ/OME metadata). Palette
        PNGs are expanded to RGB(A).

    Raises
    ------
    CellsegError
        If the file is missing, has an unsupported extension or cannot be decoded.
    """
    return _read(Path(path), palette_as_index=False)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a label matrix (0 = background, one positive integer per object).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` or ``.png`` label file (2D, or a stack of 2D label matrices).
        Palette PNGs give their palette indices.

    Returns
    -------
    numpy.ndarray
        Integer labels ``(Y, X)`` (or ``(Z, Y, X)``), ``int32`` when the largest label fits,
        otherwise ``int64``.

    Raises
    ------
    CellsegError
        If the file cannot be read, or holds floats, negative values or colours.
    """
    path = Path(path)
    return as_labels(_read(path, palette_as_index=True), source=str(path))


def as_labels(mask: np.ndarray, source: str = "mask") -> np.ndarray:
    """Check that an array is a label matrix and return it as ``int32`` (``int64`` if needed).

    Parameters
    ----------
    mask : numpy.ndarray
        Candidate labels, 2D or a stack of 2D label matrices.
    source : str
        What the array came from (a file name or a layer name), used in error messages.

    Returns
    -------
    numpy.ndarray
        The labels as ``int32``, or ``int64`` when the largest label does not fit in int32.

    Raises
    ------
    CellsegError
        For float, complex, negative, colour or more-than-3D arrays.
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask.astype(np.int32)
    if mask.dtype.kind == "f":
        raise CellsegError(_float_mask_message(mask, source))
    if mask.dtype.kind not in "iu":
        raise CellsegError(f"{source}: labels must be integers, not {mask.dtype}")
    if _looks_like_colour(mask):
        raise CellsegError(_colour_mask_message(mask, source))
    if mask.ndim not in (2, 3):
        raise CellsegError(
            f"{source}: a mask must be a 2D label matrix (or a stack of them), "
            f"got shape {mask.shape}"
        )
    if mask.size == 0:
        return mask.astype(np.int32)
    low, high = int(mask.min()), int(mask.max())
    if low < 0:
        raise CellsegError(
            f"{source}: labels must be >= 0 (0 = background), found {low}; relabel the cells "
            "with positive ids, e.g. skimage.segmentation.relabel_sequential(m - m.min())[0]"
        )
    if high > np.iinfo(np.int64).max:
        raise CellsegError(f"{source}: label {high} is too large; relabel the cells 1..N")
    return mask.astype(np.int32 if high <= _INT32_MAX else np.int64)


def _float_mask_message(mask: np.ndarray, source: str) -> str:
    finite = mask[np.isfinite(mask)]
    integral = finite.size == mask.size and bool(np.all(finite == np.round(finite)))
    if integral:
        what = f"stores whole numbers as floating point ({mask.dtype})"
    else:
        what = f"holds non-integer values ({mask.dtype}); it looks like a probability map"
    return (
        f"{source} {what}, but a mask must be an integer label matrix (0 = background, "
        "1..N = cells). Convert it and save again, e.g. "
        "tifffile.imwrite(path, np.round(m).astype(np.uint16))"
        + ("" if integral else " after thresholding and labelling (skimage.measure.label)")
    )


def _looks_like_colour(mask: np.ndarray) -> bool:
    return mask.ndim == 3 and 2 <= mask.shape[-1] <= MAX_CHANNELS < mask.shape[0]


def _colour_mask_message(mask: np.ndarray, source: str) -> str:
    hint = (
        "all channels are identical, so save just one of them, e.g. m[..., 0]"
        if all(np.array_equal(mask[..., 0], mask[..., i]) for i in range(1, mask.shape[-1]))
        else "give each cell one integer id, e.g. with np.unique(m.reshape(-1, m.shape[-1]), "
        "axis=0, return_inverse=True) and set the background colour to 0"
    )
    return (
        f"{source} is a colour image of shape {mask.shape}, but a mask must be a single-channel "
        f"integer label matrix (0 = background, 1..N = cells); {hint}"
    )


def _read(path: Path, *, palette_as_index: bool) -> np.ndarray:
    suffix = _check_readable(path)
    try:
        if suffix in TIFF_EXTENSIONS:
            data = _read_tiff(path)
        else:
            data = _read_pil(path, palette_as_index=palette_as_index)
    except (CellsegError, MemoryError):
        raise
    except Exception as exc:  # any decoder failure on a user file
        raise _unreadable(path, exc) from exc
    return _native(data)


def _check_readable(path: Path) -> str:
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise CellsegError(f"{path} does not exist; check the path{where}")
    if path.is_dir():
        raise CellsegError(f"{path} is a folder, not an image file")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise CellsegError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'}; "
            f"save it as one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    return suffix


def _unreadable(path: Path, exc: BaseException) -> CellsegError:
    return CellsegError(
        f"could not read {path}: {str(exc) or type(exc).__name__}. The file is damaged (e.g. "
        f"truncated by an interrupted copy) or is not a {path.suffix.lstrip('.').upper()} "
        "image; copy or export it again"
    )


def _read_tiff(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        if len(tif.series) > 1:
            shapes = ", ".join(str(s.shape) for s in tif.series[:4])
            raise CellsegError(
                f"{path} holds {len(tif.series)} separate images ({shapes}"
                f"{', ...' if len(tif.series) > 4 else ''}); save one image or one stack per "
                "file, or use the CLB layout (images/ + labels/), which reads page by page"
            )
        return tif.series[0].asarray()


def _read_pil(path: Path, *, palette_as_index: bool) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        if img.mode in ("P", "PA") and not palette_as_index:
            has_alpha = img.mode == "PA" or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
        elif img.mode == "PA":
            img = img.getchannel(0)
        elif img.mode in _PIL_TO_RGB:
            img = img.convert("RGB")
        return np.array(img)


def _native(data: np.ndarray) -> np.ndarray:
    return data if data.dtype.isnative else data.astype(data.dtype.newbyteorder("="))


def read_shape(path: str | os.PathLike, page: int | None = None) -> tuple[int, ...]:
    """Return the shape :func:`read_image` would give, from the file header only.

    Parameters
    ----------
    path : str or os.PathLike
        An image or mask file.
    page : int, optional
        For a multi-page TIFF, the shape of this page only.

    Returns
    -------
    tuple of int
        The array shape, without decoding pixel data (for palette PNGs the shape of the
        index array, as :func:`read_mask` gives).

    Raises
    ------
    CellsegError
        If the file cannot be read.
    """
    path = Path(path)
    suffix = _check_readable(path)
    try:
        if suffix in TIFF_EXTENSIONS:
            with tifffile.TiffFile(path) as tif:
                return tuple(tif.series[0].shape if page is None else _page(tif, page).shape)
        with Image.open(path) as img:
            bands = 3 if img.mode in _PIL_TO_RGB else len(img.getbands())
            return (img.height, img.width) + ((bands,) if bands > 1 else ())
    except CellsegError:
        raise
    except Exception as exc:  # any decoder failure on a user file
        raise _unreadable(path, exc) from exc


def tiff_page_count(path: str | os.PathLike) -> int:
    """Return the number of pages (2D planes, RGB counts as one) in a TIFF file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` file.

    Returns
    -------
    int
        The number of pages.

    Raises
    ------
    CellsegError
        If the file is not a readable TIFF.
    """
    path = Path(path)
    _check_tiff(path)
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception as exc:  # any decoder failure on a user file
        raise _unreadable(path, exc) from exc


def read_tiff_page(path: str | os.PathLike, page: int) -> np.ndarray:
    """Read one page of a multi-page TIFF (e.g. one CLB sample) in its native dtype.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` file.
    page : int
        Zero-based page index.

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` or ``(Y, X, S)`` for RGB pages.

    Raises
    ------
    CellsegError
        If the file is unreadable or has fewer pages.
    """
    path = Path(path)
    _check_tiff(path)
    try:
        with tifffile.TiffFile(path) as tif:
            data = _page(tif, page).asarray()
    except (CellsegError, MemoryError):
        raise
    except Exception as exc:  # any decoder failure on a user file
        raise _unreadable(path, exc) from exc
    return _native(data)


def read_mask_page(path: str | os.PathLike, page: int) -> np.ndarray:
    """Read one page of a multi-page label TIFF and check it like :func:`read_mask`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tif``/``.tiff`` label file.
    page : int
        Zero-based page index.

    Returns
    -------
    numpy.ndarray
        Integer labels ``(Y, X)``.

    Raises
    ------
    CellsegError
        If the page is unreadable or is not a label matrix.
    """
    return as_labels(read_tiff_page(path, page), source=f"{path} (page {page})")


def _check_tiff(path: Path) -> None:
    if _check_readable(path) not in TIFF_EXTENSIONS:
        raise CellsegError(f"{path}: expected a multi-page TIFF (.tif/.tiff)")


def _page(tif: tifffile.TiffFile, page: int) -> tifffile.TiffPage:
    count = len(tif.pages)
    if not 0 <= page < count:
        raise CellsegError(f"{tif.filehandle.path} has {count} pages; page {page} does not exist")
    return tif.pages[page]
