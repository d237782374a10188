"""Training targets computed from label matrices (pure numpy/scipy: safe in data-loader workers).

- :mod:`~napari_cellseg.targets.omni`: Omnipose-style flow, distance, boundary and weight fields.
- :mod:`~napari_cellseg.targets.weights`: DeLTA U-Net binary masks and pixel weight maps.
- :mod:`~napari_cellseg.targets.dcan`: DCAN (CLB) object and contour maps.
"""

from napari_cellseg.targets.dcan import DCAN_CHANNELS, contours, dcan_targets
from napari_cellseg.targets.omni import (
    DIST_BG,
    DIST_SCALE,
    FLOW_SCALE,
    OMNI_CHANNELS,
    edt,
    label_image,
    merge_linked_labels,
    omni_targets,
    omni_targets_batch,
)
from napari_cellseg.targets.weights import (
    BLOB_LABEL,
    estimate_seg2D_classweights,
    seg_weights,
    seg_weights_2D,
    separate_touching,
    unet_targets,
)

__all__ = [
    "BLOB_LABEL",
    "DCAN_CHANNELS",
    "DIST_BG",
    "DIST_SCALE",
    "FLOW_SCALE",
    "OMNI_CHANNELS",
    "contours",
    "dcan_targets",
    "edt",
    "estimate_seg2D_classweights",
    "label_image",
    "merge_linked_labels",
    "omni_targets",
    "omni_targets_batch",
    "seg_weights",
    "seg_weights_2D",
    "separate_touching",
    "unet_targets",
]
