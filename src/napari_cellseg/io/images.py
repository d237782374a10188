"""Reading and writing images and label masks (TIFF, PNG, JPEG), and the channel layout.

Everything a user can get wrong with a file (missing, unknown extension, truncated or not an
image at all, float or colour masks) raises :class:`~napari_cellseg.errors.CellsegError` with a
message that names the file and says what to do. Files are written atomically through
:func:`~napari_cellseg.io.outputs.atomic_path`, so a failed write never leaves a half-written
file behind.

Channel layout heuristic (:func:`to_cyx`, :func:`is_stack`, :func:`iter_frames`)
--------------------------------------------------------------------------------
Raw arrays keep their native layout until :func:`to_cyx` turns one 2D frame into float32
``(C, Y, X)``. Unless ``channel_axis`` is given, a 3D array is read as follows:

* last axis of 1..4 and first axis > 4: channels last (``YXC``; 3 = RGB; 4 = RGBA, whose
  alpha channel is dropped);
* otherwise first axis of 1..4: channels first (``CYX``, the Omnipose convention), except
  when ``nchan == 1``: a model with one channel means the array is a stack of frames;
* otherwise (e.g. 7 frames of 512x512): a stack of single-channel frames (``ZYX``/``TYX``).

A 4D array is a stack of multichannel frames; the stack axis is the first axis that is not
the channel axis. An explicit ``channel_axis`` always wins. A stack of at most 4 frames is
indistinguishable from a multichannel image by shape alone: pass ``nchan=1`` to read it as
frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.outputs import atomic_path

TIFF_EXTENSIONS = (".tif", ".tiff")
PIL_EXTENSIONS = (".png", ".jpg", ".jpeg")
IMAGE_EXTENSIONS = TIFF_EXTENSIONS + PIL_EXTENSIONS
MASK_EXTENSIONS = (".tif", ".tiff", ".png")

_MAX_CHANNELS = 4
_INT32_MAX = np.iinfo(np.int32).max
_UINT16_MAX = np.iinfo(np.uint16).max
_UINT32_MAX = np.iinfo(np.uint32).max
_PIL_TO_RGB = ("CMYK", "YCbCr", "LAB", "HSV")


# --------------------------------------------------------------------------- reading


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
    return mask.ndim == 3 and 2 <= mask.shape[-1] <= _MAX_CHANNELS < mask.shape[0]


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


# --------------------------------------------------------------------------- channel layout


def to_cyx(
    raw: np.ndarray, channel_axis: int | None = None, nchan: int | None = None
) -> np.ndarray:
    """Turn one raw 2D frame into a float32 ``(C, Y, X)`` array.

    See the module docstring for how the channel axis is guessed.

    Parameters
    ----------
    raw : numpy.ndarray
        A 2D image ``(Y, X)`` or a 3D multichannel image (``CYX`` or ``YXC``). Extra leading
        singleton axes are dropped.
    channel_axis : int, optional
        The axis of ``raw`` holding the channels; guessed when ``None``.
    nchan : int, optional
        The number of channels expected (e.g. by a model); a different count is an error.

    Returns
    -------
    numpy.ndarray
        float32 ``(C, Y, X)``, contiguous.

    Raises
    ------
    CellsegError
        If ``raw`` is a stack of frames (use :func:`iter_frames`), has an unusable number of
        dimensions, or its channel count differs from ``nchan``.
    """
    arr, axis = _squeeze_extra(np.asarray(raw), channel_axis)
    if arr.ndim == 2:
        cyx = arr[np.newaxis]
    elif arr.ndim == 3:
        axis = _channel_axis_3d(arr.shape, axis, nchan)
        if axis is None:
            raise CellsegError(
                f"an array of shape {arr.shape} looks like a stack of {arr.shape[0]} frames, "
                "not one image; process it frame by frame (iter_frames), or give "
                "--channel_axis if one axis holds the channels"
            )
        cyx = _channels_first(arr, axis)
    else:
        raise CellsegError(
            f"expected a 2D image (Y, X) or a multichannel image (C, Y, X), got shape "
            f"{arr.shape}; stacks are processed frame by frame (iter_frames)"
        )
    if nchan is not None and cyx.shape[0] != nchan:
        raise CellsegError(_nchan_message(arr.shape, cyx.shape[0], nchan))
    return np.ascontiguousarray(cyx, dtype=np.float32)


def is_stack(raw: np.ndarray, channel_axis: int | None = None, nchan: int | None = None) -> bool:
    """Tell whether a raw array is a stack of frames rather than one (multichannel) image.

    Parameters
    ----------
    raw : numpy.ndarray
        A raw array as returned by :func:`read_image`.
    channel_axis : int, optional
        The channel axis, if known; a 3D array with a channel axis is one image.
    nchan : int, optional
        Channels per frame, if known; ``nchan=1`` makes a short ``(k, Y, X)`` array a stack.

    Returns
    -------
    bool
        True for ``ZYX``/``TYX`` stacks and for 4D stacks of multichannel frames.
    """
    arr, axis = _squeeze_extra(np.asarray(raw), channel_axis)
    if arr.ndim == 3:
        return _channel_axis_3d(arr.shape, axis, nchan) is None
    return arr.ndim > 3


def frame_layout(
    shape: tuple[int, ...], channel_axis: int | None = None, nchan: int | None = None
) -> tuple[int, tuple[int, int]]:
    """How many 2D frames an array of ``shape`` holds, and their ``(Y, X)`` size.

    The shape-only twin of :func:`iter_frames` (same rules, nothing read or allocated), so
    that a header's shape can be checked against a mask before any pixel is loaded.

    Parameters
    ----------
    shape : tuple of int
        Shape of a raw image, e.g. from :func:`read_shape`.
    channel_axis, nchan : int, optional
        As for :func:`iter_frames`.

    Returns
    -------
    n_frames : int
        1 for a single (multichannel) image.
    yx : tuple of int
        Height and width of each frame.

    Raises
    ------
    CellsegError
        For shapes that :func:`iter_frames` cannot split into frames.
    """
    arr, axis = _squeeze_extra(np.broadcast_to(np.uint8(0), tuple(shape)), channel_axis)
    if arr.ndim < 2 or arr.ndim > 4:
        raise CellsegError(
            f"an array of shape {tuple(shape)} is not an image: expected (Y, X), (C, Y, X), "
            "(Y, X, C) or a stack of those"
        )
    n_frames = 1
    if is_stack(arr, axis, nchan):
        if arr.ndim == 3:
            return arr.shape[0], (arr.shape[1], arr.shape[2])
        stack_axis = 1 if axis == 0 else 0
        n_frames = arr.shape[stack_axis]
        axis = None if axis is None else axis - (axis > stack_axis)
        arr = arr[(slice(None),) * stack_axis + (0,)]
    if arr.ndim == 2:
        return n_frames, (arr.shape[0], arr.shape[1])
    if arr.ndim == 4:
        raise CellsegError(
            f"cannot split an array of shape {tuple(shape)} into 2D frames; expected at most "
            "(frames, Y, X, channels)"
        )
    channels = _channel_axis_3d(arr.shape, axis, nchan)
    if channels is None:
        raise CellsegError(
            f"an array of shape {tuple(shape)} has frames of shape {arr.shape}, which look like "
            "stacks themselves; give --channel_axis to say which axis holds the channels"
        )
    y, x = (v for i, v in enumerate(arr.shape) if i != channels)
    return n_frames, (y, x)


def iter_frames(
    raw: np.ndarray, channel_axis: int | None = None, nchan: int | None = None
) -> Iterator[np.ndarray]:
    """Yield each frame of a raw array as float32 ``(C, Y, X)``.

    A single image yields itself once. For a 4D array the stack axis is the first axis that
    is not ``channel_axis``.

    Parameters
    ----------
    raw : numpy.ndarray
        A raw array as returned by :func:`read_image`.
    channel_axis : int, optional
        The channel axis of ``raw`` (not of a frame); guessed per frame when ``None``.
    nchan : int, optional
        Channels per frame, checked by :func:`to_cyx`.

    Yields
    ------
    numpy.ndarray
        float32 ``(C, Y, X)`` frames.

    Raises
    ------
    CellsegError
        As :func:`to_cyx`, or for arrays with more than 4 non-singleton axes.
    """
    arr, axis = _squeeze_extra(np.asarray(raw), channel_axis)
    if not is_stack(arr, axis, nchan):
        yield to_cyx(arr, axis, nchan)
        return
    if arr.ndim == 3:
        for frame in arr:
            yield to_cyx(frame, None, nchan)
        return
    if arr.ndim != 4:
        raise CellsegError(
            f"cannot split an array of shape {arr.shape} into 2D frames; expected at most "
            "(frames, Y, X, channels)"
        )
    stack_axis = 1 if axis == 0 else 0
    frame_axis = None if axis is None else axis - (axis > stack_axis)
    for frame in np.moveaxis(arr, stack_axis, 0):
        yield to_cyx(frame, frame_axis, nchan)


def _squeeze_extra(arr: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray, int | None]:
    """Drop singleton axes in front of the last three (e.g. ImageJ's T=1, Z=1).

    Returns the array and ``channel_axis`` normalised to a non-negative index into it
    (``None`` for 2D arrays: a greyscale image has one channel whatever the setting).
    """
    axis = None
    if channel_axis is not None and arr.ndim >= 3:
        axis = _normalise_axis(channel_axis, arr.ndim)
    while arr.ndim > 3:
        extra = [i for i in range(arr.ndim - 3) if arr.shape[i] == 1 and i != axis]
        if not extra:
            break
        arr = np.squeeze(arr, axis=extra[0])
        if axis is not None and axis > extra[0]:
            axis -= 1
    return arr, axis


def _channel_axis_3d(
    shape: tuple[int, ...], channel_axis: int | None, nchan: int | None
) -> int | None:
    if channel_axis is not None:
        return channel_axis
    first, last = shape[0], shape[-1]
    if last <= _MAX_CHANNELS < first:
        return 2
    if first <= _MAX_CHANNELS and not (nchan == 1 and first > 1):
        return 0
    return None


def _normalise_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise CellsegError(f"channel_axis {axis} does not exist in a {ndim}D image")
    return axis % ndim


def _channels_first(arr: np.ndarray, axis: int) -> np.ndarray:
    cyx = np.moveaxis(arr, axis, 0)
    if axis == 2 and cyx.shape[0] == 4:  # RGBA: drop alpha
        cyx = cyx[:3]
    return cyx


def _nchan_message(shape: tuple[int, ...], found: int, expected: int) -> str:
    return (
        f"the image of shape {shape} has {found} channel{'s' * (found != 1)} but "
        f"{expected} {'is' if expected == 1 else 'are'} expected; give --channel_axis to say "
        "which axis holds the channels, set --nchan to match the data, or save the image "
        f"with the {expected} channel{'s' * (expected != 1)} the model uses"
    )


# --------------------------------------------------------------------------- writing


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
    if image.ndim == 3 and image.shape[-1] <= _MAX_CHANNELS < image.shape[0]:
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
