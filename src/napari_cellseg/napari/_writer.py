"""napari writer: a Labels layer -> ``<name>_masks.tif`` (and ``<name>_links.txt``).

Bad input (float or negative labels, links to labels that do not exist, an unwritable folder)
becomes an error notification naming the layer; nothing is written then. Files are written
atomically by the core ``io`` functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images import as_labels, write_mask
from napari_cellseg.io.links import links_path_for, validate_links, write_links
from napari_cellseg.napari._edits import current_links

MASK_SUFFIX = "_masks"
TIFF_EXTENSIONS = (".tif", ".tiff")


def masks_path(path: str | Path) -> Path:
    """The mask file written for a requested path: ``<stem>_masks.tif`` beside it.

    Parameters
    ----------
    path
        The path chosen in napari, e.g. ``cells.tif``, ``cells_masks.tiff`` or ``cells``.

    Returns
    -------
    pathlib.Path
        ``cells_masks.tif`` (``.tiff`` is kept; ``_masks`` is not doubled).
    """
    path = Path(path)
    ext = path.suffix.lower() if path.suffix.lower() in TIFF_EXTENSIONS else ".tif"
    stem = path.stem if path.suffix.lower() in TIFF_EXTENSIONS else path.name
    if not stem.endswith(MASK_SUFFIX):
        stem += MASK_SUFFIX
    return path.with_name(stem + ext)


def write_masks(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer as a mask file, with its links when it has any.

    The links file ``<name>_links.txt`` beside the mask always matches what is saved: it is
    written from the layer's links as they stand (after any undo, :func:`current_links`), and
    an old one is removed when the layer has no links, so that the next open does not report
    links to labels that no longer exist.

    Parameters
    ----------
    path
        Requested path; the mask goes to :func:`masks_path` of it.
    data
        The layer's labels ``(Y, X)`` or ``(N, Y, X)``.
    meta
        The layer's attributes; ``meta["metadata"]["links"]`` (set by the readers and the QC
        fixes) holds the links: a set of pairs for a 2D layer, ``{frame: pairs}`` for a stack,
        whose ids are the stack's (as in one label stack file).

    Returns
    -------
    list of str
        The files written; empty when the input was refused (a notification says why).
    """
    name = meta.get("name") or Path(path).stem
    target = masks_path(path)
    links_file = links_path_for(target)
    metadata = meta.get("metadata") or {}
    try:
        labels = as_labels(np.asarray(data), source=f"Labels layer '{name}'")
        links = current_links(labels, metadata)
        if isinstance(links, dict) and metadata.get("samples"):
            show_warning(
                f"CellSeg: the frames of '{name}' are the samples of a training folder, each "
                "with its own ids: their links are not saved into one file; save each "
                "sample's links from its own 2D layer"
            )
            links = None
        elif isinstance(links, dict):
            links = set().union(*links.values())
        if links:
            validate_links(links, labels, source=f"links of layer '{name}'")
        written = [str(write_mask(target, labels))]
        if links:
            written.append(str(write_links(links_file, links)))
        elif links_file.is_file():
            links_file.unlink()  # it described the labels just replaced
            show_info(f"CellSeg: '{name}' has no links; removed the old {links_file.name}")
    except CellsegError as err:
        show_error(f"CellSeg did not save layer '{name}' to {target}: {err}")
        return []
    return written
