"""Cellpose / Omnipose ``CPnet`` state dicts, compared with this package's network.

A CPnet (Cellpose 1-3, Omnipose) state dict is recognised by its key names
(``downsample.down.res_down_0.conv.conv_0.2.weight``, ``upsample.up.res_up_0...``,
``output.2.weight``) and its hyper-parameters are read from the shapes (:func:`cpnet_layout`).
Its weights become a model of this package only where the two networks agree layer for layer,
which :func:`first_mismatch` checks by walking the CPnet keys in order against the residual
U-Net of the closest :class:`~napari_cellseg.models.ModelSpec` (:func:`closest_spec`).

They never agree at present: the networks share the plan (residual levels, max-pool, additive
skips, a style vector, a BN-ReLU-1x1 head) but not the layers. CPnet has no stem convolution
(its first level reads the image), biases in every convolution, four convolutions per level with
a batch-normalised 1x1 shortcut, a decoder whose first convolution is 3x3 at full resolution,
an extra decoder level at the bottleneck and the style added before each decoder batch norm;
its outputs also follow Omnipose's / Cellpose's conventions (flow scale, channel order,
cell probability), not this package's omni fields. ``docs/models.md`` says what an import
would need. :func:`import_problem` gives the whole explanation for a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellseg.errors import CellsegError
from napari_cellseg.models import ModelSpec

if TYPE_CHECKING:
    import torch

#: Keys of a CPnet state dict that are not weights (Cellpose 3 stores its diameters).
NOT_WEIGHTS = ("diam_mean", "diam_labels")

_DOWN = re.compile(r"downsample\.down\.res_down_(\d+)\.(conv\.conv_(\d)|proj)\.(\d)\.(\w+)$")
_UP = re.compile(r"upsample\.up\.res_up_(\d+)\.(?:conv\.conv_(\d)|proj)(\.conv|)\.(\d)\.(\w+)$")
_UP_STYLE = re.compile(r"upsample\.up\.res_up_(\d+)\.conv\.conv_(\d)\.full\.(\w+)$")
_OUTPUT = re.compile(r"output\.(\d)\.(\w+)$")


@dataclass(frozen=True)
class CPnetLayout:
    """The hyper-parameters of a CPnet, read from its state dict.

    Attributes
    ----------
    nchan
        Input channels (Cellpose: 2, Omnipose: 1 or 2).
    nbase
        Widths of the levels, full resolution first (Cellpose: 32, 64, 128, 256).
    nout
        Output channels (Cellpose: 3, two flows and the cell probability).
    dim
        Spatial dimensions.
    kernel
        Convolution size (3).
    """

    nchan: int
    nbase: tuple[int, ...]
    nout: int
    dim: int
    kernel: int


@dataclass(frozen=True)
class Mismatch:
    """The first CPnet weight without an equal counterpart in this package's network.

    Attributes
    ----------
    key, shape
        The CPnet weight.
    ours, our_shape
        Its counterpart in the residual U-Net (``None``: there is none).
    why
        What differs in the two networks at that place.
    """

    key: str
    shape: tuple[int, ...]
    ours: str | None
    our_shape: tuple[int, ...] | None
    why: str

    def __str__(self) -> str:
        first = f"the first CPnet weight that does not fit is {self.key} {list(self.shape)}"
        if self.ours is None:
            return f"{first}, which has no counterpart here: {self.why}"
        return f"{first}; its counterpart {self.ours} is {list(self.our_shape or ())}: {self.why}"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a Cellpose/Omnipose model file with ``torch.load(weights_only=True)``.

    Raises
    ------
    CellsegError
        Missing file, a pickle holding more than tensors (never unpickled), a damaged file,
        or a file that is not a dict of tensors.
    """
    import torch

    from napari_cellseg.models.checkpoint import safe_load

    path = Path(path)
    if not path.is_file():
        raise CellsegError(f"{path} not found: pass the Cellpose/Omnipose model file")
    data = safe_load(
        path,
        pickle_fix="it is a python pickle of more than weights (a whole model object)",
        use="Save its state dict in the Cellpose/Omnipose environment you trust "
        "(torch.save(model.net.state_dict(), 'weights.pth')) and pass that file",
    )
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CellsegError(f"{path} holds a {type(data).__name__}, not a state dict of weights")
    return {k.removeprefix("module."): v for k, v in data.items()}  # DataParallel saves


def cpnet_layout(state_dict: dict[str, torch.Tensor], source: str = "") -> CPnetLayout:
    """Recognise a CPnet state dict and read its hyper-parameters from the shapes.

    Raises
    ------
    CellsegError
        Naming what the state dict is instead: a napari-cellseg model, a Cellpose-SAM
        (transformer) model, a CPnet without residual blocks, or something else.
    """
    name = source or "the state dict"
    keys = list(state_dict)
    if any(k.startswith("encoder.") for k in keys) and not any(
        k.startswith("downsample.") for k in keys
    ):
        raise CellsegError(
            f"{name} is a Cellpose-SAM (Cellpose 4) model: a vision transformer, not a CPnet "
            "U-Net; its layers have no counterpart in this package's network"
        )
    if any(k.startswith("downsample.down.conv_down_") for k in keys):
        raise CellsegError(f"{name} is a CPnet without residual blocks (residual_on=False)")
    try:
        first = state_dict["downsample.down.res_down_0.conv.conv_0.2.weight"]
        out = state_dict["output.2.weight"]
    except KeyError:
        raise CellsegError(
            f"{name} is not a Cellpose/Omnipose CPnet state dict: it lacks "
            f"downsample.down.res_down_0.conv.conv_0.2.weight and output.2.weight (its "
            f"first keys: {', '.join(keys[:3]) or 'none'})"
        ) from None
    levels = sorted(
        {int(m.group(1)) for k in keys if (m := _DOWN.match(k)) and m.group(2) == "conv.conv_0"}
    )
    widths = [
        int(state_dict[f"downsample.down.res_down_{n}.conv.conv_0.2.weight"].shape[0])
        for n in levels
    ]
    return CPnetLayout(
        nchan=int(first.shape[1]),
        nbase=tuple(widths),
        nout=int(out.shape[0]),
        dim=first.ndim - 2,
        kernel=int(first.shape[-1]),
    )


def closest_spec(layout: CPnetLayout, nclasses: int | None = None) -> ModelSpec:
    """The omni :class:`ModelSpec` nearest to a CPnet: its channels, widths and outputs.

    ``nclasses`` (2 or 3) defaults to what ``layout.nout`` says (``dim + 1`` outputs: 2,
    ``dim + 2``: 3, otherwise 2).
    """
    if nclasses is None:
        nclasses = 3 if layout.nout == layout.dim + 2 else 2
    return ModelSpec(
        arch="omni",
        nchan=layout.nchan,
        nclasses=nclasses,
        dim=layout.dim,
        nbase=layout.nbase,
        blocks_per_level=2,  # CPnet's level: two residual units of two convolutions
        skip="add",
        style=True,
    )


def _counterpart(key: str, n_levels: int) -> tuple[str | None, str]:
    """The residual U-Net key playing ``key``'s part, and what differs there."""
    if m := _DOWN.match(key):
        level, part, t, layer, param = m.groups()
        if part == "proj":
            if layer == "0":
                return None, "CPnet batch-normalises the shortcut; here the shortcut has no norm"
            return (
                f"encoder.stages.{level}.blocks.0.proj.{param}",
                "CPnet's shortcut is BN -> 1x1 conv (with bias) of the block's input; here a "
                "1x1 conv without bias of the activated input",
            )
        t = int(t)
        norm, conv = ("bn1", "conv1") if t % 2 == 0 else ("bn2", "conv2")
        target = f"encoder.stages.{level}.blocks.{t // 2}.{norm if layer == '0' else conv}"
        if layer == "2" and param == "bias":
            why = "CPnet's convolutions have biases; these (followed by batch norms) have none"
        elif level == "0" and t == 0:
            why = (
                "CPnet's first level reads the input channels directly; this network starts "
                "with a 3x3 stem convolution to nbase[0] channels"
            )
        else:
            why = "the layer shapes differ"
        return f"{target}.{param}", why
    if (m := _UP.match(key)) or (m := _UP_STYLE.match(key)):
        level = int(m.group(1))
        if level == n_levels - 1:
            return None, "CPnet has a decoder level at the bottleneck; this network has none"
        return None, (
            "CPnet's decoder level is 4 convolutions with the style added before each batch "
            "norm and a 3x3 convolution of the upsampled features; this network's is a 1x1 "
            "projection at low resolution, then residual blocks with the style after their "
            "first convolution"
        )
    if m := _OUTPUT.match(key):
        layer, param = m.groups()
        return ("head_bn." if layer == "0" else "head.") + param, "the output layers differ"
    return None, "a layer this network does not have"


def first_mismatch(state_dict: dict[str, torch.Tensor], spec: ModelSpec) -> Mismatch | None:
    """Walk the CPnet weights in order; the first without an equal-shaped counterpart.

    Parameters
    ----------
    state_dict
        A CPnet state dict.
    spec
        The residual U-Net to compare with (:func:`closest_spec`).

    Returns
    -------
    Mismatch or None
        None only if every CPnet weight has a counterpart of its shape.
    """
    from napari_cellseg.models import build_model

    ours = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    n_levels = len(spec.nbase)
    for key, value in state_dict.items():
        if key in NOT_WEIGHTS:
            continue
        target, why = _counterpart(key, n_levels)
        shape = tuple(value.shape)
        if target is None or target not in ours:
            return Mismatch(key, shape, None, None, why)
        if ours[target] != shape:
            return Mismatch(key, shape, target, ours[target], why)
    return None


def import_problem(path: str | Path, nclasses: int | None = None) -> str:
    """Why the CPnet in ``path`` cannot become a model of this package.

    Parameters
    ----------
    path
        A Cellpose/Omnipose model file holding a CPnet state dict.
    nclasses
        The omni ``nclasses`` to compare with (default: from the CPnet's outputs).

    Returns
    -------
    str
        The CPnet's layout, the first weight that does not fit and what an import would need.

    Raises
    ------
    CellsegError
        The file is not a CPnet state dict (see :func:`read_state_dict`, :func:`cpnet_layout`).
    """
    state_dict = read_state_dict(path)
    layout = cpnet_layout(state_dict, str(path))
    spec = closest_spec(layout, nclasses)
    mismatch = first_mismatch(state_dict, spec)
    found = (
        f"{path} is a CPnet with {layout.nchan} input channel(s), levels of "
        f"{', '.join(map(str, layout.nbase))} channels and {layout.nout} outputs"
    )
    fit = (
        str(mismatch)
        if mismatch
        else "its weights have counterparts of the same shapes, but the layers compute differently"
    )
    return (
        f"{found}, but its architecture does not match this package's network, so its "
        f"weights cannot be carried over: {fit}. An import needs a CPnet implementation in "
        "this package (biases, batch-normalised shortcuts, no stem, the extra bottleneck "
        "level, the style before each batch norm) and Omnipose's / Cellpose's output "
        "conventions in the reconstruction; see docs/models.md. Retrain here instead "
        "(cellseg train, or fine-tune a built-in model with --pretrained_model)"
    )
