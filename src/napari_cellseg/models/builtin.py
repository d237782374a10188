"""Built-in models shipped inside the package, and resolving a model argument to a file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from napari_cellseg.errors import CellsegError

#: Built-in model name -> file name in ``napari_cellseg/models/weights``.
BUILTIN = {
    "nuclei": "nuclei.pt",
    "bacteria_phase": "bacteria_phase.pt",
}


def available() -> list[str]:
    """Names of the built-in models whose weights are installed."""
    folder = resources.files("napari_cellseg.models") / "weights"
    return [name for name, file in BUILTIN.items() if (folder / file).is_file()]


def resolve_model(name_or_path: str | Path) -> Path:
    """Turn a built-in name, a model file or the yaml beside one into a path.

    Raises
    ------
    CellsegError
        When it is neither an existing file nor an installed built-in model.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    key = str(name_or_path)
    if key in BUILTIN:
        candidate = Path(str(resources.files("napari_cellseg.models") / "weights" / BUILTIN[key]))
        if candidate.is_file():
            return candidate
    names = ", ".join(available()) or "none installed"
    raise CellsegError(
        f"model {key!r} not found: give a model file written by `cellseg train`, the yaml "
        f"beside it, or a built-in name ({names})"
    )
