"""Rules for the files a command writes, so that nothing a user made is lost.

* :func:`atomic_path`: every file is written through a hidden temporary beside it and moved
  into place only when complete, so a failed or interrupted write never leaves half a file.
* :func:`remove_stale_temporaries`: the temporaries an interrupted (killed) write left behind
  are removed the next time the same files are written; only names of this module's pattern
  (``.<name>.<8 hex digits>.tmp[<suffix>]``) are touched.
* :func:`refuse_existing` and :func:`refuse_inputs`: checked before any work, so that a
  refused command writes nothing at all.

Pure standard library: importing this module imports neither numpy nor torch.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_cellseg.errors import CellsegError

#: Files listed by name in a refusal before "... and N more".
_LISTED = 3


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden temporary through which :func:`atomic_path` writes ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The final destination.

    Returns
    -------
    pathlib.Path
        ``.<name>.<8 random hex digits>.tmp<suffix>`` in the same folder; the suffix is kept
        so that writers choosing the format from the extension still work.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _is_temporary_of(candidate: str, name: str) -> bool:
    """True if ``candidate`` is a temporary of :func:`temporary_path` for the file ``name``.

    Also matches the suffix-less ``.<name>.<hex>.tmp`` of earlier versions.
    """
    suffix = re.escape(Path(name).suffix)
    pattern = rf"\.{re.escape(name)}\.[0-9a-f]{{8}}\.tmp(?:{suffix})?"
    return re.fullmatch(pattern, candidate) is not None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Give a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the destination folder (so :func:`os.replace` is atomic), is
    hidden (:func:`temporary_path`) and keeps the destination's suffix. On success it is
    flushed to disk and replaces ``path``; on any exception it is removed and ``path`` is left
    untouched. A process killed in the middle leaves the temporary behind:
    :func:`remove_stale_temporaries` removes it at the next write of the same file.

    Parameters
    ----------
    path : str or os.PathLike
        The final destination.

    Yields
    ------
    pathlib.Path
        Where to write; it does not exist yet.

    Raises
    ------
    CellsegError
        If the destination folder is missing, ``path`` is a folder, or the operating system
        refuses the write (permissions, disk full).

    Examples
    --------
    >>> with atomic_path("out/cells_masks.tif") as tmp:  # doctest: +SKIP
    ...     tifffile.imwrite(tmp, labels)
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CellsegError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise CellsegError(f"cannot write {path}: it is a folder; give a file name")
    tmp = temporary_path(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise CellsegError(
            f"could not write {path}: {exc}; check that the folder is writable and has space"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def remove_stale_temporaries(targets: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporaries that interrupted atomic writes of ``targets`` left behind.

    Call it when a run that writes ``targets`` starts (nothing else writes them then): only
    hidden files (or folders, for a Zarr) named as :func:`temporary_path` names a temporary of
    one of ``targets`` are removed; every other file is left alone.

    Parameters
    ----------
    targets : iterable of str or os.PathLike
        Files about to be written.

    Returns
    -------
    list of pathlib.Path
        The temporaries removed.
    """
    removed = []
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        target = Path(target)
        by_folder.setdefault(target.parent, set()).add(target.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(".") and any(_is_temporary_of(entry.name, n) for n in names):
                if entry.is_dir():  # a folder output (a Zarr) being written
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _listing(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_LISTED])
    more = len(paths) - _LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def refuse_existing(
    paths: Iterable[str | os.PathLike],
    *,
    overwrite: bool = False,
    what: str = "output file",
    fix: str = "pass --overwrite to replace them, or choose another output",
) -> None:
    """Refuse to go on when files about to be written already exist (unless ``overwrite``).

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Every file the command will write.
    overwrite : bool
        The user asked to replace existing files (``--overwrite``): only folders are refused.
    what : str
        What the files are, for the message (``"mask file"``).
    fix : str
        What the user can do, for the message.

    Raises
    ------
    CellsegError
        Saying how many of the files exist and naming the first ones; a path that is an
        existing folder is refused even with ``overwrite``.
    """
    paths = [Path(p) for p in paths]
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise CellsegError(
            f"{_listing(folders)} {'is a folder' if len(folders) == 1 else 'are folders'}, "
            f"where a {what} would be written; give a file name or another output folder"
        )
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        n = len(existing)
        raise CellsegError(
            f"{n} {what}{'s' * (n != 1)} already exist{'s' * (n == 1)} and would be replaced: "
            f"{_listing(existing)}; {fix}. Nothing was written"
        )


def refuse_inputs(
    paths: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike],
    option: str,
) -> None:
    """Refuse to write over an input file, whatever ``--overwrite`` says.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Every file the command will write.
    inputs : iterable of str or os.PathLike
        Every file the command reads.
    option : str
        The option that chose the output (``"--csv"``), for the message.

    Raises
    ------
    CellsegError
        Naming the first output that is an input.
    """
    given = {Path(p).resolve() for p in inputs}
    clash = [Path(p) for p in paths if Path(p).resolve() in given]
    if clash:
        raise CellsegError(
            f"{option}: {clash[0]} is an input file of this command and is never written over; "
            f"choose another {option}. Nothing was written"
        )
