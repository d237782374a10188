"""Folder listings and path names in messages, shared by the convention finders."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from napari_cellseg.errors import CellsegError

_LIST_LIMIT = 10
#: What a dataset folder can look like, for messages that found none of it.
EXPECTED_LAYOUTS = (
    "expected <base>.tif + <base>_masks.tif pairs (Omnipose), img/ + seg/ folders (DeLTA), "
    "images/ + labels/ multi-page TIFFs (CLB) or 01/tNNN.tif + 01_GT/SEG/man_segNNN.tif "
    "(Cell Tracking Challenge)"
)


def looked_for(extensions: tuple[str, ...]) -> str:
    """What a finder looked for, for messages: ``looked for .tif, .png files``."""
    return f"looked for {', '.join(extensions)} files"


def list_subfolders(root: Path) -> list[Path]:
    """The visible subfolders of ``root``, in natural order."""
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: natural_key(d.name),
    )


def list_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """The visible files of ``folder`` with one of ``extensions``, sorted."""
    return sorted(
        f
        for f in folder.iterdir()
        if f.suffix.lower() in extensions and not f.name.startswith(".") and f.is_file()
    )


def by_stem(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """The files of ``folder`` by stem, refusing two files with one stem."""
    found: dict[str, list[Path]] = defaultdict(list)
    for f in list_files(folder, extensions):
        found[f.stem].append(f)
    clashes = [" and ".join(f.name for f in fs) for fs in found.values() if len(fs) > 1]
    if clashes:
        raise CellsegError(
            f"several files in {folder} share one name: {listing(clashes)}; files are "
            "matched by name, so keep one of each"
        )
    return {stem: fs[0] for stem, fs in found.items()}


def require_folders(root: Path, names: tuple[str, ...], convention: str) -> None:
    """Refuse a ``convention`` dataset that lacks one of the folders ``names``."""
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        raise CellsegError(
            f"{root} is not a {convention} dataset: it has no {' or '.join(missing)} folder "
            f"({' + '.join(n + '/' for n in names)} expected)"
        )


def relative_name(root: Path, folder: Path, base: str) -> str:
    """A sample name: ``base``, prefixed by its subfolder below ``root``."""
    return base if folder == root else f"{folder.relative_to(root).as_posix()}/{base}"


def rel(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` for messages (absolute when outside it)."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def listing(items: Iterable[str], limit: int = _LIST_LIMIT) -> str:
    """Comma-separated ``items``, the first ``limit`` of them and how many more."""
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


def note(warnings: list[str], files: list[Path], root: Path, template: str) -> None:
    """Append ``template`` (with ``{n}`` and ``{s}``) and a listing of ``files`` if any."""
    if files:
        head = template.format(n=len(files), s="s" * (len(files) != 1))
        warnings.append(f"{head}: {listing(rel(root, f) for f in files)}")


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders numbers by value (``t2`` before ``t10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]
