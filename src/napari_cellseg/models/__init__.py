"""Networks and the checkpoint format.

:class:`ModelSpec` describes a network completely (it is stored in every checkpoint) and
:func:`build_model` turns it into a ``torch.nn.Module``. Importing this package does not import
torch; :func:`build_model` and :func:`pad_to_multiple` import it when called. The checkpoint
format lives in :mod:`napari_cellseg.models.checkpoint`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family

if TYPE_CHECKING:
    import torch

SKIPS = ("add", "concat")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network.

    Attributes
    ----------
    arch
        Model family, a name of :func:`napari_cellseg.families.family_names`: ``'omni'`` (flow
        + distance (+ boundary) fields), ``'unet'`` (binary mask logit, DeLTA-style) or
        ``'dcan'`` (object + contour logits, CLB-style).
    nchan
        Input image channels.
    nclasses
        Omnipose's meaning, used by families with ``uses_nclasses`` (``omni``): 2 = flow +
        distance, 3 = + boundary. It is not a number of object classes.
    dim
        Spatial dimensions, 2 or 3.
    nbase
        Channels per level, full resolution first; ``len(nbase)`` is the number of levels
        (depth) and inputs must be divisible by :meth:`divisor`. Every level costs about the
        same when widths double, so ``nbase[0]`` sets the speed. The default (24, 48, 96, 192)
        with 1 block per level (1.0 M parameters) runs forward + backward about 5x faster than
        Omnipose's CPnet on a 2-core CPU and learned better per step than the equally fast
        (16, 32, 64, 128) with 2 blocks; (32, 64, 128, 256) adds capacity at 1.7x the cost.
    blocks_per_level
        Residual blocks per level (encoder and decoder).
    dropout
        Channel dropout rate inside the residual blocks and the DCAN side outputs.
    skip
        U-Net skip connections: ``'add'`` (Omnipose) or ``'concat'`` (DeLTA). ``dcan`` has none.
    style
        Add the global style vector (Omnipose) to every decoder block. ``dcan`` ignores it.
    """

    arch: str
    nchan: int = 1
    nclasses: int = 2
    dim: int = 2
    nbase: tuple[int, ...] = (24, 48, 96, 192)
    blocks_per_level: int = 1
    dropout: float = 0.0
    skip: str = "add"
    style: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbase", tuple(int(n) for n in self.nbase))
        problems = []
        try:
            problems += get_family(self.arch).spec_problems(self)
        except CellsegError as err:
            problems.append(str(err))
        if self.nchan < 1:
            problems.append(f"nchan {self.nchan} is not at least 1")
        if self.dim not in (2, 3):
            problems.append(f"dim {self.dim} is not 2 or 3")
        if len(self.nbase) < 2 or min(self.nbase) < 1:
            problems.append(f"nbase {self.nbase} needs at least 2 levels of positive width")
        if self.blocks_per_level < 1:
            problems.append(f"blocks_per_level {self.blocks_per_level} is not at least 1")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout {self.dropout} is not in [0, 1)")
        if self.skip not in SKIPS:
            problems.append(f"skip {self.skip!r} is not one of {', '.join(SKIPS)}")
        if problems:
            raise CellsegError("invalid model settings: " + "; ".join(problems))

    def n_outputs(self) -> int:
        """Output channels, as the family says (omni ``dim`` flows + distance (+ boundary),
        unet 1, dcan 2)."""
        return get_family(self.arch).n_outputs(self)

    def divisor(self) -> int:
        """Every spatial input size must be a multiple of this (``2 ** (levels - 1)``)."""
        return 2 ** (len(self.nbase) - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain python types only (``nbase`` as a list), for checkpoints and yaml."""
        d = asdict(self)
        d["nbase"] = list(self.nbase)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`CellsegError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CellsegError(
                f"unknown model settings {', '.join(unknown)}: the model was probably made by a "
                "newer napari-cellseg; upgrade napari-cellseg to use it"
            )
        if "arch" not in d:
            raise CellsegError("model settings lack 'arch' (omni, unet or dcan)")
        return cls(**d)


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """Build the network for ``spec`` with fresh weights from torch's global RNG.

    Seed with ``torch.manual_seed`` first for a reproducible initialisation. The module maps
    ``(B, nchan, *spatial)`` to ``(B, spec.n_outputs(), *spatial)`` raw outputs (logits or field
    values, no final activation); spatial sizes must be multiples of ``spec.divisor()``.
    """
    return get_family(spec.arch).build(spec)


def pad_to_multiple(
    x: torch.Tensor, multiple: int, dim: int = 2, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad the last ``dim`` axes of ``x`` up to multiples of ``multiple``.

    Padding is split evenly between both sides. ``'reflect'`` falls back to ``'replicate'``
    for axes too short to reflect.

    Parameters
    ----------
    x
        Tensor ``(B, C, *spatial)`` with ``dim`` spatial axes.
    multiple
        Target multiple, e.g. ``spec.divisor()``.
    dim
        Number of spatial axes.
    mode
        ``torch.nn.functional.pad`` mode: ``'reflect'``, ``'replicate'`` or ``'constant'``.

    Returns
    -------
    padded, crop
        The padded tensor and the slices of its last ``dim`` axes that hold the input:
        ``out[(..., *crop)]`` undoes the padding of an output of the same spatial size.
    """
    import torch.nn.functional as F

    spatial = x.shape[-dim:]
    pads = [(-n) % multiple for n in spatial]
    before = [p // 2 for p in pads]
    crop = tuple(slice(b, b + n) for b, n in zip(before, spatial))
    if not any(pads):
        return x, crop
    if mode == "reflect" and any(p - b >= n for p, b, n in zip(pads, before, spatial)):
        mode = "replicate"
    widths = [w for b, p in zip(reversed(before), reversed(pads)) for w in (b, p - b)]
    return F.pad(x, widths, mode=mode), crop
