"""Reading what discovery found: a sample's image, mask, links and weights, and the rule by
which a mask fits its image (:func:`pair_problem`)."""

from __future__ import annotations

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets._listing import listing
from napari_cellseg.io.datasets.samples import Dataset, Sample
from napari_cellseg.io.images import (
    frame_layout,
    read_image,
    read_mask,
    read_mask_page,
    read_shape,
    read_tiff_page,
)
from napari_cellseg.io.links import read_links


def load_image(sample: Sample) -> np.ndarray:
    """Read a sample's image in its native dtype and layout.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.

    Returns
    -------
    numpy.ndarray
        As :func:`~napari_cellseg.io.images.read_image`; for CLB the sample's page.
    """
    if sample.page is not None:
        return read_tiff_page(sample.image, sample.page)
    return read_image(sample.image)


def load_mask(sample: Sample) -> np.ndarray:
    """Read a sample's label matrix.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`, with a mask.

    Returns
    -------
    numpy.ndarray
        Integer labels (int32, or int64 if needed); for CLB the sample's page; a binary DeLTA
        mask becomes one label per 4-connected component.

    Raises
    ------
    CellsegError
        If the sample has no mask or the mask is not a label matrix.
    """
    if sample.mask is None:
        raise CellsegError(f"sample {sample.name} ({sample.image}) has no mask")
    if sample.page is not None:
        labels = read_mask_page(sample.mask, sample.page)
    else:
        labels = read_mask(sample.mask)
    return _label_if_binary(labels) if sample.binary_mask else labels


def load_links(sample: Sample, labels: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Read a sample's links, validated against its mask.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.
    labels : numpy.ndarray, optional
        The sample's labels if already loaded (saves reading the mask again).

    Returns
    -------
    set of tuple of int
        Linked label pairs ``(a, b)``, ``a < b``; empty when the sample has no links file.
    """
    if sample.links is None:
        return set()
    return read_links(sample.links, labels=load_mask(sample) if labels is None else labels)


def load_weights(sample: Sample) -> np.ndarray | None:
    """Read a sample's DeLTA weight map as float32, or None when it has none.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.

    Returns
    -------
    numpy.ndarray or None
        float32 ``(Y, X)``.
    """
    if sample.weights is None:
        return None
    return read_image(sample.weights).astype(np.float32)


def load_sample(
    sample: Sample,
) -> tuple[np.ndarray, np.ndarray | None, set[tuple[int, int]]]:
    """Read a sample's image, labels and links, checking that image and mask sizes agree.

    Parameters
    ----------
    sample : Sample
        From :func:`discover`.

    Returns
    -------
    image : numpy.ndarray
        Raw image, native dtype and layout.
    labels : numpy.ndarray or None
        Integer labels, None when the sample has no mask.
    links : set of tuple of int
        Linked label pairs (empty without a links file).

    Raises
    ------
    CellsegError
        If a file is unreadable, the mask is not a label matrix, the sizes differ or a link
        names a label that is not in the mask.
    """
    image = load_image(sample)
    if sample.mask is None:
        return image, None, set()
    labels = load_mask(sample)
    problem = pair_problem(image.shape, labels.shape)
    if problem:
        raise CellsegError(
            f"sample {sample.name}: image {sample.image} and mask {sample.mask} do not fit: "
            f"{problem}"
        )
    return image, labels, load_links(sample, labels)


def check_shapes(dataset: Dataset) -> None:
    """Check from the file headers that every mask (and weight map) fits its image.

    Parameters
    ----------
    dataset : Dataset
        From :func:`discover`.

    Raises
    ------
    CellsegError
        Listing the samples whose sizes differ, or naming an unreadable file.
    """
    problems = []
    for sample in dataset.samples:
        if sample.mask is None:
            continue
        image = read_shape(sample.image, sample.page)
        for kind, path in (("mask", sample.mask), ("weights", sample.weights)):
            if path is not None and pair_problem(image, shape := read_shape(path, sample.page)):
                problems.append(f"{sample.name} (image {image}, {kind} {shape})")
    if problems:
        raise CellsegError(
            f"{len(problems)} sample{'s' * (len(problems) != 1)} in {dataset.root} have masks "
            f"or weights whose size differs from the image: {listing(problems)}; each must "
            "have the image's height and width"
        )


def _label_if_binary(labels: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    values = np.unique(labels)
    if np.count_nonzero(values) != 1:
        return labels
    return ndimage.label(labels > 0)[0].astype(np.int32)


def pair_problem(
    image_shape: tuple[int, ...],
    mask_shape: tuple[int, ...],
    *,
    channel_axis: int | None = None,
    nchan: int | None = None,
) -> str | None:
    """Why a mask does not fit its image, or None when it does: the one rule for a pair.

    QC, training, the readers and the CLI all ask this function, so that a pair one of them
    accepts is accepted by all (with the same ``channel_axis`` and ``nchan``). The image is
    split into 2D frames as :func:`~napari_cellseg.io.images.iter_frames` splits it; the
    mask, ``(Y, X)`` or a stack ``(N, Y, X)``, must have as many frames of the same size.

    Parameters
    ----------
    image_shape, mask_shape : tuple of int
        Shapes from the file headers or the arrays.
    channel_axis, nchan : int, optional
        As for training (``--channel_axis``, ``--nchan``): with ``nchan=1`` a short
        ``(k, Y, X)`` image is ``k`` frames; ``None`` guesses frames or channels from the
        shape (and reads an image of the mask's own 3D shape as frames).

    Returns
    -------
    str or None
        A message naming both shapes and what to do.
    """
    image_shape, mask_shape = tuple(image_shape), tuple(mask_shape)
    if len(mask_shape) not in (2, 3):
        return f"the mask has shape {mask_shape}; a mask is (Y, X) or a stack (N, Y, X)"
    mask_frames = 1 if len(mask_shape) == 2 else mask_shape[0]
    if nchan is None and channel_axis is None and image_shape == mask_shape:
        return None
    try:
        frames, yx = frame_layout(image_shape, channel_axis, nchan)
    except CellsegError as err:
        return f"the image has shape {image_shape}, the mask {mask_shape}: {err}"
    if yx != mask_shape[-2:]:
        return (
            f"the mask has shape {mask_shape} but its image has shape {image_shape}: the mask "
            f"must have the image's height and width ({yx[0]}x{yx[1]}); "
            f"{_size_fix(yx, mask_shape[-2:])}"
        )
    if frames != mask_frames:
        hint = (
            "; with one channel per frame (--nchan 1) a short stack counts as frames, so "
            "give --nchan and --channel_axis if one axis holds channels"
            if frames > 1 and nchan == 1
            else ""
        )
        return (
            f"the mask has shape {mask_shape} ({mask_frames} frame{'s' * (mask_frames != 1)}) "
            f"but its image has shape {image_shape} ({frames} frame{'s' * (frames != 1)}); "
            f"give each image frame its own mask frame{hint}"
        )
    return None


def _size_fix(image_yx: tuple[int, ...], mask_yx: tuple[int, ...]) -> str:
    """What to do about a mask whose height and width differ from its image's."""
    (height, width), (mask_height, mask_width) = image_yx, mask_yx
    if (mask_height, mask_width) == (width, height):
        return "its axes look swapped: transpose the mask, or pair the right files"
    if mask_height >= height and mask_width >= width:
        return (
            "the mask is larger: if the image is a crop of the annotated field, crop the mask "
            "the same way; otherwise pair the right files"
        )
    if mask_height <= height and mask_width <= width:
        return (
            "the mask is smaller: if it annotates a crop of the image, crop the image the same "
            "way (or pad the mask with background); otherwise pair the right files"
        )
    return "pair the right files (the mask is taller and narrower than the image, or the reverse)"
