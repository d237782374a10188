"""Data augmentation: warped crops, intensity changes, DeLTA operations and CLB trimming.

Every function takes numpy arrays and a ``numpy.random.Generator``; all randomness comes from
that generator, so a seeded generator gives bit-identical results. The package uses numpy and
scipy only (no torch): it runs in data-loader worker processes.

Geometry is applied identically to an image, its label matrix and any extra maps (weights).
Images are resampled bilinearly (order 1), label matrices by nearest neighbour (order 0), so
labels stay integral and keep their ids. Resampling gathers only the output pixels from the
input through one coordinate map (:mod:`.resample`; the whole image is never warped): a
224 x 224 warped crop of a one-channel image and its labels costs 1-2 ms, about half of scipy's
``affine_transform``.

- :mod:`.warp`: Omnipose-style random warped crops (:func:`random_warp_crop`);
- :mod:`.intensity`: Omnipose-style intensity changes (:func:`intensity_augment`);
- :mod:`.delta`: DeLTA's operations (:func:`delta_augment`, :func:`load_augment_ops`);
- :mod:`.clb`: CLB's trimming and affine copies (:func:`trim`, :func:`clb_augment`).
"""

from napari_cellseg.augment.clb import TRIM_METHODS, clb_augment, trim
from napari_cellseg.augment.delta import DELTA_DEFAULT_OPS, delta_augment, load_augment_ops
from napari_cellseg.augment.intensity import intensity_augment
from napari_cellseg.augment.warp import random_warp_crop

__all__ = [
    "DELTA_DEFAULT_OPS",
    "TRIM_METHODS",
    "clb_augment",
    "delta_augment",
    "intensity_augment",
    "load_augment_ops",
    "random_warp_crop",
    "trim",
]
