"""Reading and writing images, masks and links files; dataset discovery per convention.

Pure numpy/tifffile/PIL (scipy only to label binary DeLTA masks): importing this package
imports neither torch nor napari nor Qt.
"""

from napari_cellseg.io.datasets import (
    CONVENTIONS,
    Dataset,
    Sample,
    check_shapes,
    detect_convention,
    discover,
    load_image,
    load_links,
    load_mask,
    load_sample,
    load_weights,
)
from napari_cellseg.io.images import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    TIFF_EXTENSIONS,
    as_labels,
    is_stack,
    iter_frames,
    read_image,
    read_mask,
    read_mask_page,
    read_shape,
    read_tiff_page,
    tiff_page_count,
    to_cyx,
    write_image,
    write_mask,
)
from napari_cellseg.io.links import (
    links_path_for,
    read_links,
    validate_links,
    write_links,
)
from napari_cellseg.io.outputs import atomic_path, refuse_existing, refuse_inputs

__all__ = [
    "CONVENTIONS",
    "IMAGE_EXTENSIONS",
    "MASK_EXTENSIONS",
    "TIFF_EXTENSIONS",
    "Dataset",
    "Sample",
    "as_labels",
    "atomic_path",
    "check_shapes",
    "detect_convention",
    "discover",
    "is_stack",
    "iter_frames",
    "links_path_for",
    "load_image",
    "load_links",
    "load_mask",
    "load_sample",
    "load_weights",
    "read_image",
    "read_links",
    "read_mask",
    "read_mask_page",
    "read_shape",
    "read_tiff_page",
    "refuse_existing",
    "refuse_inputs",
    "tiff_page_count",
    "to_cyx",
    "validate_links",
    "write_image",
    "write_links",
    "write_mask",
]
