"""Mask reconstruction: network outputs to instance labels, one function per model family.

- :func:`omni_masks` (Omnipose-style flow + distance, :mod:`.omni`): foreground from the
  distance, pixels moved along the flow, and neighbouring pixels that end close together
  joined into objects.
- :func:`unet_masks` (DeLTA U-Net) and :func:`dcan_masks` (CLB DCAN), :mod:`.probability`.

All take numpy arrays and return ``int32`` labels ``(Y, X)``, 0 = background, objects
numbered 1..N. The cleanup helpers of :mod:`.cleanup` (:func:`remove_small`,
:func:`fill_label_holes`, :func:`renumber`) are shared by the three. Nothing here imports torch
unless ``omni_masks`` is asked to integrate on a torch device.
"""

from napari_cellseg.reconstruction.cleanup import fill_label_holes, remove_small, renumber
from napari_cellseg.reconstruction.omni import follow_flows, omni_masks
from napari_cellseg.reconstruction.probability import dcan_masks, unet_masks

__all__ = [
    "dcan_masks",
    "fill_label_holes",
    "follow_flows",
    "omni_masks",
    "remove_small",
    "renumber",
    "unet_masks",
]
