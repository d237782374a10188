"""A folder prediction's files: which ones an image gets, writing them, skipping finished ones.

``cellseg predict`` writes ``<base>_masks.tif`` per image (``_flows.tif`` and
``_outlines.png`` when asked), each atomically (:func:`~napari_cellseg.io.outputs.atomic_path`),
so a file that exists is complete: :func:`finished` tells which images a killed run already
did, and :func:`segment_to_files` is what a run does for one image, in this process or on a
Dask worker (:mod:`napari_cellseg.predict.dask`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari_cellseg.io.datasets import Sample
    from napari_cellseg.predict.config import PredictConfig
    from napari_cellseg.predict.segmenter import Segmenter


def output_paths(
    out: Path, base: str, *, save_flows: bool = False, save_png: bool = False
) -> dict[str, Path]:
    """The files written for one image: masks, and flows / outlines when asked for.

    Parameters
    ----------
    out
        The output folder.
    base
        The image's base name.
    save_flows, save_png
        Also ``<base>_flows.tif`` / ``<base>_outlines.png``.

    Returns
    -------
    dict of str to pathlib.Path
        ``masks`` (and ``flows``, ``outlines``).
    """
    paths = {"masks": out / f"{base}_masks.tif"}
    if save_flows:
        paths["flows"] = out / f"{base}_flows.tif"
    if save_png:
        paths["outlines"] = out / f"{base}_outlines.png"
    return paths


def finished(outputs: Mapping[Any, Mapping[str, Path]]) -> list[Any]:
    """The images all of whose files exist (atomic writes: an existing file is complete).

    Parameters
    ----------
    outputs
        Each image's :func:`output_paths`.

    Returns
    -------
    list
        The keys of ``outputs`` with every file present, in order.
    """
    return [key for key, paths in outputs.items() if all(p.is_file() for p in paths.values())]


def segment_to_files(
    seg: Segmenter, sample: Sample, paths: Mapping[str, Path], config: PredictConfig, params: Any
) -> None:
    """Segment one image and write its files (the output folder is made at the first).

    Parameters
    ----------
    seg
        The model.
    sample
        The image.
    paths
        Its :func:`output_paths`.
    config
        The prediction options (``channel_axis``).
    params
        The family's reconstruction parameters.

    Raises
    ------
    CellsegError
        If the image cannot be read or segmented, or a file cannot be written; the files
        not yet written are then missing, none is half-written.
    """
    from napari_cellseg.io import datasets
    from napari_cellseg.io.images import write_mask
    from napari_cellseg.predict import predict_frames, results

    raw = datasets.load_image(sample)
    frames = seg.prepare(raw, channel_axis=config.channel_axis, source=str(sample.image))
    done = results(predict_frames(seg, frames, params, keep_outputs="flows" in paths))
    labels = done[0].labels if len(done) == 1 else np.stack([r.labels for r in done])
    paths["masks"].parent.mkdir(parents=True, exist_ok=True)
    write_mask(paths["masks"], labels)
    if "flows" in paths:
        _write_flows(paths["flows"], done)
    if "outlines" in paths:
        from napari_cellseg.overlay import save_outline_png

        save_outline_png(paths["outlines"], frames[0], done[0].labels)


def _write_flows(path: Path, results) -> None:
    from napari_cellseg.io.images import write_image

    stacks = []
    for r in results:
        maps = []
        for arr in r.outputs.values():
            maps.extend(arr if arr.ndim == 3 else [arr])
        stacks.append(np.stack(maps).astype(np.float32))
    write_image(path, stacks[0] if len(stacks) == 1 else np.stack(stacks))
