"""Lineage tables and napari Tracks data from a tracking result, and DeLTA file names.

A tracking result is a label stack ``(T, Y, X)`` whose ids are track ids with its
:class:`~.ctc.Track` table (see :mod:`.ctc`). From it:

- :func:`lineage_rows` / :func:`write_lineage_csv`: one row per cell per frame (id, frame,
  mother, daughters, area, length, centroid), the per-cell table DeLTA reports;
- :func:`tracks_layer_data`: the ``(data, graph)`` of a napari Tracks layer.

DeLTA names its files ``Position01_Chamber02_Frame003.tif`` (or ``Position01_Frame003.tif``)
and the crops of one cell ``...Frame003Cell000004.tif``: :func:`parse_delta_name` and
:func:`cell_file_name`.

Nothing here imports napari, Qt or torch.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track, check_tracks

#: The columns of :func:`lineage_rows`, in order.
LINEAGE_COLUMNS: tuple[str, ...] = (
    "id",
    "frame",
    "mother",
    "daughters",
    "area",
    "length",
    "centroid_y",
    "centroid_x",
)


def _regions(labels: np.ndarray, tracks: Sequence[Track], source: str) -> Iterator[tuple]:
    """``(frame, region)`` for every cell of every frame (skimage regionprops, computed lazily),
    after checking that ``tracks`` describe ``labels``."""
    from skimage.measure import regionprops

    labels = np.asarray(labels)
    check_tracks(labels, tracks, source)
    for t, frame in enumerate(labels):
        for region in regionprops(frame):
            yield t, region


def lineage_rows(labels: np.ndarray, tracks: Sequence[Track]) -> list[dict]:
    """One row per cell per frame: its track, lineage and shape.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels ``(T, Y, X)`` whose ids are track ids.
    tracks : sequence of Track
        Their track table (checked against the labels).

    Returns
    -------
    list of dict
        Sorted by id then frame, with the keys of :data:`LINEAGE_COLUMNS`: ``id``, ``frame``,
        ``mother`` (the parent track, 0 for none), ``daughters`` (on the track's last frame,
        its child tracks separated by spaces; ``''`` otherwise), ``area`` (pixels),
        ``length`` (major axis length of the ellipse with the same second moments, pixels),
        ``centroid_y`` and ``centroid_x``.

    Raises
    ------
    CellsegError
        If the table does not describe the labels.
    """
    by_id = {t.id: t for t in tracks}
    children: dict[int, list[int]] = {}
    for track in sorted(tracks):
        if track.parent:
            children.setdefault(track.parent, []).append(track.id)
    rows = []
    for t, region in _regions(labels, tracks, "lineage"):
        track = by_id[region.label]
        last = t == track.end
        cy, cx = region.centroid
        rows.append(
            {
                "id": int(region.label),
                "frame": t,
                "mother": int(track.parent),
                "daughters": " ".join(map(str, children.get(track.id, []))) if last else "",
                "area": int(region.area),
                "length": float(region.axis_major_length),
                "centroid_y": float(cy),
                "centroid_x": float(cx),
            }
        )
    rows.sort(key=lambda row: (row["id"], row["frame"]))
    return rows


def write_lineage_csv(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """Write lineage rows as CSV atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its folder must exist. An existing file is replaced (refuse it first
        with :func:`~napari_cellseg.io.outputs.refuse_existing` where it matters).
    rows : sequence of dict
        Rows of :func:`lineage_rows`; the columns are the first row's keys
        (:data:`LINEAGE_COLUMNS` when there is none, giving a header only).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    CellsegError
        If a row lacks a column or has others, or the file cannot be written.
    """
    from napari_cellseg.io.outputs import atomic_path

    path = Path(path)
    columns = list(rows[0]) if rows else list(LINEAGE_COLUMNS)
    for number, row in enumerate(rows, start=1):
        if list(row) != columns:
            raise CellsegError(
                f"cannot write {path}: row {number} has the columns {list(row)} but the first "
                f"row {columns}. Nothing was written"
            )
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def tracks_layer_data(
    labels: np.ndarray, tracks: Sequence[Track]
) -> tuple[np.ndarray, dict[int, list[int]]]:
    """The data and graph of a napari Tracks layer showing a tracking result.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels ``(T, Y, X)`` whose ids are track ids.
    tracks : sequence of Track
        Their track table (checked against the labels).

    Returns
    -------
    data : numpy.ndarray
        ``(N, 4)`` float rows ``[track_id, t, y, x]`` (the centroid of the cell), one per cell
        per frame, sorted by track id then frame.
    graph : dict of int to list of int
        ``{child track: [parent track]}`` for every track that divided from another.

    Raises
    ------
    CellsegError
        If the table does not describe the labels.
    """
    points = [
        (float(region.label), float(t), *map(float, region.centroid))
        for t, region in _regions(labels, tracks, "tracks layer")
    ]
    data = np.array(points, dtype=float).reshape(-1, 4)
    if len(data):
        data = data[np.lexsort((data[:, 1], data[:, 0]))]
    graph = {int(t.id): [int(t.parent)] for t in sorted(tracks) if t.parent}
    return data, graph


_DIGITS = re.compile(r"\d+")
_TEXT = re.compile(r"\D+")


def parse_delta_name(name: str | os.PathLike) -> dict:
    """The position, chamber and frame numbers of a DeLTA file name.

    DeLTA names the frames of a movie ``Position01_Chamber02_Frame003.tif`` (mother machine:
    3 groups of digits between 4 groups of text, the ``"pct"`` form) or
    ``Position01_Frame003.tif`` (agar pads: 2 groups of digits between 3 groups of text, the
    ``"pt"`` form). Only the numbers' places count, not the words.

    Parameters
    ----------
    name : str or os.PathLike
        A file name or path (only the name is read).

    Returns
    -------
    dict
        ``position`` (int), ``chamber`` (int, None in the ``"pt"`` form), ``frame`` (int) and
        ``form`` (``"pct"`` or ``"pt"``).

    Raises
    ------
    CellsegError
        If the name has another number of digit or text groups.
    """
    base = Path(name).name
    digits = _DIGITS.findall(base)
    text = _TEXT.findall(base)
    if len(digits) == 3 and len(text) == 4:
        position, chamber, frame = map(int, digits)
        return {"position": position, "chamber": chamber, "frame": frame, "form": "pct"}
    if len(digits) == 2 and len(text) == 3:
        position, frame = map(int, digits)
        return {"position": position, "chamber": None, "frame": frame, "form": "pt"}
    raise CellsegError(
        f"{base!r} is not a DeLTA file name: expected Position<P>_Chamber<C>_Frame<T>.<ext> "
        "(e.g. Position01_Chamber02_Frame003.tif, 3 numbers) or Position<P>_Frame<T>.<ext> "
        f"(e.g. Position01_Frame003.tif, 2 numbers); it has {len(digits)} numbers and "
        f"{len(text)} text parts. Rename the files"
    )


def cell_file_name(path: str | os.PathLike, cell: int) -> str:
    """The DeLTA name of the file of one cell of a frame: ``Cell%06d`` before the extension.

    Parameters
    ----------
    path : str or os.PathLike
        The frame's file (``Position01_Frame003.tif``), with or without a folder.
    cell : int
        The cell number (>= 0).

    Returns
    -------
    str
        ``Position01_Frame003Cell000004.tif`` for cell 4, in the folder of ``path``.

    Raises
    ------
    CellsegError
        If ``cell`` is negative or ``path`` has no file name.
    """
    path = Path(path)
    if isinstance(cell, bool) or not isinstance(cell, int | np.integer) or cell < 0:
        raise CellsegError(f"cell number {cell!r} for {path.name}: give an integer >= 0")
    if not path.name:
        raise CellsegError(f"{str(path)!r} has no file name to number a cell in")
    return str(path.with_name(f"{path.stem}Cell{int(cell):06d}{path.suffix}"))
