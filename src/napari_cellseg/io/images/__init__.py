"""Reading and writing images and label masks (TIFF, PNG, JPEG), and the channel layout.

Everything a user can get wrong with a file (missing, unknown extension, truncated or not an
image at all, float or colour masks) raises :class:`~napari_cellseg.errors.CellsegError` with a
message that names the file and says what to do. Files are written atomically through
:func:`~napari_cellseg.io.outputs.atomic_path`, so a failed write never leaves a half-written
file behind.

:mod:`.reading` reads files and checks label matrices, :mod:`.writing` writes them, and
:mod:`.layout` turns raw arrays into ``(C, Y, X)`` frames (its notes say how the channel axis
is guessed).
"""

from napari_cellseg.io.images.layout import frame_layout, is_stack, iter_frames, to_cyx
from napari_cellseg.io.images.reading import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    PIL_EXTENSIONS,
    TIFF_EXTENSIONS,
    as_labels,
    read_image,
    read_mask,
    read_mask_page,
    read_shape,
    read_tiff_page,
    tiff_page_count,
)
from napari_cellseg.io.images.writing import write_image, write_mask

__all__ = [
    "IMAGE_EXTENSIONS",
    "MASK_EXTENSIONS",
    "PIL_EXTENSIONS",
    "TIFF_EXTENSIONS",
    "as_labels",
    "frame_layout",
    "is_stack",
    "iter_frames",
    "read_image",
    "read_mask",
    "read_mask_page",
    "read_shape",
    "read_tiff_page",
    "tiff_page_count",
    "to_cyx",
    "write_image",
    "write_mask",
]
