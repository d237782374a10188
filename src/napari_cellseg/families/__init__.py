"""The model families and their registry.

>>> get_family("omni").n_outputs(spec)      # doctest: +SKIP
>>> family_names()
('omni', 'unet', 'dcan')

A new family is a subclass of :class:`Family` passed to :func:`register`; nothing else in the
package needs to know it (see ``tests/test_families.py``, which trains, saves, loads and
predicts with a family it registers itself).
"""

from __future__ import annotations

from napari_cellseg.errors import CellsegError
from napari_cellseg.families.base import Family, LabelCrop, NoParams, param
from napari_cellseg.families.dcan import Dcan
from napari_cellseg.families.omni import Omni
from napari_cellseg.families.track import TrackFamily
from napari_cellseg.families.unet import Unet

_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Make a family available under ``family.name`` (replacing one of that name)."""
    if not family.name:
        raise ValueError(f"{type(family).__name__} has no name")
    _REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (tests that register their own)."""
    _REGISTRY.pop(name, None)


def family_names() -> tuple[str, ...]:
    """The registered families, in registration order."""
    return tuple(_REGISTRY)


def get_family(name: str) -> Family:
    """The family called ``name``.

    Raises
    ------
    CellsegError
        For a name no family has, listing the registered ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CellsegError(f"architecture {name!r} is not one of {', '.join(_REGISTRY)}") from None


for _family in (Omni(), Unet(), Dcan(), TrackFamily()):
    register(_family)

__all__ = [
    "Family",
    "LabelCrop",
    "NoParams",
    "family_names",
    "get_family",
    "param",
    "register",
    "unregister",
]
