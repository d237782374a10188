"""Omnipose ``<base>_links.txt`` files: pairs of label ids that are pieces of one object.

Format: one pair per line, ``1,2`` (also ``1, 2``, ``1 2`` or tab-separated); blank lines and
``#`` comments are ignored. Pairs are normalised to ``(a, b)`` with ``a < b``; a label linked
to itself, label 0 (background) and negative ids are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.outputs import atomic_path

LINKS_SUFFIX = "_links.txt"

_PAIR = re.compile(r"^([+-]?\d+)\s*(?:,\s*|\s+)([+-]?\d+)$")


def links_path_for(
    mask_or_image_path: str | os.PathLike, *, mask_filter: str = "_masks", img_filter: str = ""
) -> Path:
    """Return the links file that belongs to an image or mask file.

    Parameters
    ----------
    mask_or_image_path : str or os.PathLike
        ``<base><img_filter>.<ext>`` or ``<base><mask_filter>.<ext>``.
    mask_filter : str
        Suffix of mask file stems (Omnipose default ``_masks``).
    img_filter : str
        Suffix of image file stems (Omnipose default: none).

    Returns
    -------
    pathlib.Path
        ``<base>_links.txt`` in the same folder (it may not exist).
    """
    path = Path(mask_or_image_path)
    stem = path.stem
    for suffix in (mask_filter, img_filter):
        if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return path.with_name(stem + LINKS_SUFFIX)


def read_links(path: str | os.PathLike, labels: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Read a links file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``_links.txt`` file.
    labels : numpy.ndarray, optional
        The label matrix the links refer to; every linked id must occur in it.

    Returns
    -------
    set of tuple of int
        Pairs ``(a, b)`` with ``0 < a < b``.

    Raises
    ------
    CellsegError
        If the file is missing or not text, a line is malformed (the message gives
        ``file:line`` and the text), or a linked id is not in ``labels``.
    """
    path = Path(path)
    entries = _parse(path, _read_text(path))
    if labels is not None:
        _check_present(entries, labels, str(path))
    return {pair for _, pair in entries}


def validate_links(
    links: Iterable[tuple[int, int]], labels: np.ndarray, source: str = "links"
) -> None:
    """Check links against a label matrix.

    Parameters
    ----------
    links : iterable of tuple of int
        Pairs of label ids.
    labels : numpy.ndarray
        The label matrix (or stack) the links refer to.
    source : str
        Where the links come from (a file or layer name), used in error messages.

    Raises
    ------
    CellsegError
        If a pair links an id to itself, uses an id <= 0, or an id is not in ``labels``.
    """
    entries = [(None, _normalise(pair, source)) for pair in links]
    _check_present(entries, labels, source)


def links_by_frame(
    labels: np.ndarray, links: Iterable[tuple[int, int]]
) -> dict[int, set[tuple[int, int]]]:
    """Split the links of a label stack ``(N, Y, X)`` by frame.

    A links file beside a stack lists pairs of ids of the whole stack (ids are the stack's,
    as in a 3D or tracked label matrix); a frame gets the pairs whose two ids both occur in
    it. Frames without such a pair are left out.

    Parameters
    ----------
    labels : numpy.ndarray
        The label stack.
    links : iterable of tuple of int
        Pairs of label ids.

    Returns
    -------
    dict of int to set of tuple of int
        Frame index -> its pairs ``(a, b)``, ``a < b``.
    """
    pairs = {(min(a, b), max(a, b)) for a, b in links}
    out = {}
    for i, frame in enumerate(np.asarray(labels)):
        present = set(np.unique(frame).tolist())
        kept = {(a, b) for a, b in pairs if a in present and b in present}
        if kept:
            out[i] = kept
    return out


def write_links(path: str | os.PathLike, links: Iterable[tuple[int, int]]) -> Path:
    """Write a links file atomically, sorted, one ``a,b`` pair per line with ``a < b``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, normally ``<base>_links.txt`` (see :func:`links_path_for`).
    links : iterable of tuple of int
        Pairs of label ids; ``(b, a)`` and ``(a, b)`` are the same link.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    CellsegError
        If a pair is invalid (nothing is written then) or the file cannot be written.
    """
    path = Path(path)
    pairs = sorted({_normalise(pair, f"links for {path}") for pair in links})
    text = "".join(f"{a},{b}\n" for a, b in pairs)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise CellsegError(f"links file {path} does not exist (or is not a file)")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CellsegError(
            f"{path} is not a text file; a links file holds one pair of label ids per line, "
            "e.g. '1,2'"
        ) from exc


def _parse(path: Path, text: str) -> list[tuple[int | None, tuple[int, int]]]:
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        match = _PAIR.match(content)
        where = f"{path}:{lineno}"
        if match is None:
            raise CellsegError(
                f"{where}: cannot read {line.strip()!r}; each line must hold two label ids "
                "separated by a comma or spaces, e.g. '1,2'"
            )
        pair = (int(match.group(1)), int(match.group(2)))
        entries.append((lineno, _normalise(pair, where)))
    return entries


def _normalise(pair: tuple[int, int], where: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in pair)
    except (TypeError, ValueError) as exc:
        raise CellsegError(f"{where}: {pair!r} is not a pair of label ids") from exc
    if min(a, b) <= 0:
        raise CellsegError(
            f"{where}: link {a},{b} uses label {min(a, b)}; label ids are >= 1 "
            "(0 is background and cannot be linked)"
        )
    if a == b:
        raise CellsegError(f"{where}: label {a} is linked to itself; remove that line")
    return (a, b) if a < b else (b, a)


def _check_present(
    entries: list[tuple[int | None, tuple[int, int]]], labels: np.ndarray, source: str
) -> None:
    ids = np.asarray([pair for _, pair in entries], dtype=np.int64).reshape(-1)
    present = np.isin(ids, np.asarray(labels))
    if present.all():
        return
    index = int(np.argmin(present))
    lineno, pair = entries[index // 2]
    missing = ids[index]
    where = source if lineno is None else f"{source}:{lineno}"
    raise CellsegError(
        f"{where}: link {pair[0]},{pair[1]} refers to label {missing}, which is not in the mask; "
        "fix the links file or the mask so that both ids exist"
    )
