"""ONNX export of a segmentation model: the network alone, its raw outputs, any batch and size.

>>> export_onnx("nuclei", "nuclei.onnx")                    # doctest: +SKIP

The file holds the network of a model file, nothing before or after it: the input is the
normalised image (percentile normalisation, :data:`napari_cellseg.preprocess.NORMALIZATION`),
float32 ``(batch, nchan, height, width)``, and the output the raw maps
``(batch, n_outputs, height, width)`` that the model family reads (flows and distance for
``omni``, logits for ``unet`` and ``dcan``). The batch, height and width axes are dynamic;
height and width must be multiples of the network's downsampling factor
(:meth:`napari_cellseg.models.ModelSpec.divisor`, 8 for the default four levels; onnxruntime
fails on other sizes), so pad an image up to one first. The reconstruction of instance labels
from the maps stays in napari-cellseg (``cellseg predict``), as do tiling and resizing to the
model's cell diameter.

The opset is :data:`OPSET` (18), the one torch's exporter writes natively: onnxruntime reads it
from version 1.14 on, so the file runs in the older runtimes that bioimage.io consumers bundle.
Everything needed to use the file is in its ``metadata_props`` (keys ``napari_cellseg.*``,
:func:`metadata`, read back by :func:`read_metadata`): the model's spec, the normalisation, the
divisor, the diameter it was trained at, the meaning of each output channel and the model
card. Each export is checked before it is written: the file is run with onnxruntime and its
outputs must equal PyTorch's within :data:`TOLERANCE`.

torch, onnx and onnxruntime are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family

if TYPE_CHECKING:
    import onnx
    import torch

    from napari_cellseg.models.checkpoint import Checkpoint

#: The opset written by default (torch's exporter writes 18 natively; onnxruntime >= 1.14).
OPSET = 18
#: The lowest opset torch's exporter writes.
MIN_OPSET = 18
#: Largest difference allowed between the exported network's outputs and PyTorch's, relative to
#: the largest output magnitude (at least 1).
TOLERANCE = 1e-4
#: Names of the graph's input and output.
INPUT, OUTPUT = "input", "output"
#: Prefix of the ``metadata_props`` keys an export writes (:func:`metadata`).
PREFIX = "napari_cellseg."


def load_for_export(model: str | os.PathLike) -> tuple[torch.nn.Module, Checkpoint]:
    """Load a model that can be exported: a 2D segmentation model.

    Parameters
    ----------
    model
        A model file, the yaml beside it, or a built-in model name.

    Returns
    -------
    network, checkpoint
        The network in eval mode on the CPU, and the file's contents.

    Raises
    ------
    CellsegError
        The model is not found or not a model file, is a tracking model (its network needs the
        tracker around it: windows around each cell, seeds, lineage), or is 3D.
    """
    from napari_cellseg.models.builtin import resolve_model
    from napari_cellseg.models.checkpoint import load_checkpoint, load_model

    path = resolve_model(model)
    ckpt = load_checkpoint(path)
    name = f"{model!s} ({ckpt.spec.arch})"
    if get_family(ckpt.spec.arch).tracks:
        raise CellsegError(
            f"model {name} is a tracking model and has no export path: its network is only "
            "meaningful inside `cellseg track`, which cuts a window around every cell of a "
            "frame, feeds it with the seed mask of that cell and turns the outputs into links "
            "and divisions. Export a segmentation model (omni, unet, dcan). Nothing was written"
        )
    if ckpt.spec.dim != 2:
        raise CellsegError(
            f"model {name} is a {ckpt.spec.dim}D model: only 2D models are exported. "
            "Nothing was written"
        )
    net, ckpt = load_model(path)
    return net, ckpt


def metadata(ckpt: Checkpoint) -> dict[str, str]:
    """The ``metadata_props`` of an export of ``ckpt`` (strings; JSON for structured values).

    Parameters
    ----------
    ckpt
        The model file's contents.

    Returns
    -------
    dict
        ``napari_cellseg.`` + ``version``, ``model`` (the file name), ``family``, ``spec``,
        ``normalization``, ``divisor``, ``diameter`` (0: not trained at a diameter),
        ``input`` (what the input must be, in words), ``outputs`` (name and meaning of each
        channel) and ``card`` (:func:`napari_cellseg.export.card.model_card`).
    """
    from napari_cellseg import __version__
    from napari_cellseg.export.card import model_card
    from napari_cellseg.preprocess import NORMALIZATION

    spec, divisor = ckpt.spec, ckpt.spec.divisor()
    normalization = ckpt.meta.get("normalization") or NORMALIZATION
    channels = get_family(spec.arch).output_channels(spec, ckpt.meta)
    values = {
        "version": __version__,
        "model": ckpt.path.name,
        "family": spec.arch,
        "spec": json.dumps(spec.to_dict()),
        "normalization": json.dumps(normalization),
        "divisor": str(divisor),
        "diameter": str(float(ckpt.meta.get("diameter") or 0.0)),
        "input": (
            f"float32 (batch, {spec.nchan}, height, width), height and width multiples of "
            f"{divisor}; each channel normalised so that its {normalization['low']:g} and "
            f"{normalization['high']:g} percentiles map to 0 and 1 (not clipped)"
        ),
        "outputs": json.dumps([{"name": n, "meaning": m} for n, m in channels]),
        "card": json.dumps(model_card(ckpt), default=str),
    }
    return {PREFIX + key: value for key, value in values.items()}


def example_input(ckpt: Checkpoint, seed: int = 0) -> np.ndarray:
    """A small normalised-looking input, float32 ``(2, nchan, 4 d, 6 d)`` (``d`` the divisor).

    Two images and a non-square size, so that nothing in the export is fixed to one value.
    """
    d = ckpt.spec.divisor()
    rng = np.random.default_rng(seed)
    return rng.random((2, ckpt.spec.nchan, 4 * d, 6 * d), dtype=np.float32)


@contextmanager
def quiet_export() -> Iterator[None]:
    """Silence what torch's exporters print and warn about (optional operator sets, tracing)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_model(
    net: torch.nn.Module, ckpt: Checkpoint, *, opset: int = OPSET, check: np.ndarray | None = None
) -> onnx.ModelProto:
    """Convert a network to ONNX and check it against PyTorch with onnxruntime.

    Parameters
    ----------
    net
        The network, in eval mode on the CPU.
    ckpt
        Its model file's contents (for the metadata).
    opset
        ONNX opset, at least :data:`MIN_OPSET`.
    check
        Normalised input ``(batch, nchan, height, width)`` on which the outputs must match
        PyTorch's (default :func:`example_input`).

    Returns
    -------
    onnx.ModelProto
        With dynamic batch, height and width axes and the :func:`metadata` as
        ``metadata_props``.

    Raises
    ------
    CellsegError
        The opset is too low or the installed onnxruntime cannot run it, the network cannot be
        converted, or the converted network's outputs differ from PyTorch's.
    """
    import onnx
    import torch

    if opset < MIN_OPSET:
        raise CellsegError(
            f"--opset {opset}: torch's ONNX exporter writes opset {MIN_OPSET} or later; "
            f"pass --opset {OPSET} (the default)"
        )
    x = torch.from_numpy(example_input(ckpt))
    axes = {0: "batch", 2: "height", 3: "width"}
    try:
        with quiet_export(), torch.no_grad():
            program = torch.onnx.export(
                net,
                (x,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=(axes,),
                verbose=False,
            )
    except Exception as exc:  # torch raises many types for graphs it cannot convert
        raise CellsegError(
            f"model {ckpt.path.name} ({ckpt.spec.arch}) could not be converted to ONNX opset "
            f"{opset}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
            "Nothing was written"
        ) from exc
    proto = program.model_proto
    props = metadata(ckpt)
    proto.doc_string = (
        f"napari-cellseg {ckpt.spec.arch} network of {ckpt.path.name}: {props[PREFIX + 'input']}"
        f" -> raw maps (batch, {ckpt.spec.n_outputs()}, height, width); see metadata_props"
    )
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    check_against_torch(proto.SerializeToString(), net, x.numpy() if check is None else check)
    return proto


def run_onnx(model: bytes | str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Run an exported network with onnxruntime on the CPU.

    Parameters
    ----------
    model
        The ONNX file, or its bytes.
    x
        float32 ``(batch, nchan, height, width)``, height and width multiples of the divisor.

    Returns
    -------
    numpy.ndarray
        The raw outputs ``(batch, n_outputs, height, width)``.
    """
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else os.fspath(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]


def check_against_torch(model: bytes, net: torch.nn.Module, x: np.ndarray) -> float:
    """The largest difference between an exported network's outputs and PyTorch's on ``x``.

    Raises
    ------
    CellsegError
        The installed onnxruntime cannot run the file (e.g. an opset it does not know yet), or
        the difference exceeds :data:`TOLERANCE` (relative to the largest output, at least 1).
    """
    import onnxruntime as ort
    import torch

    try:
        got = run_onnx(model, x)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise CellsegError(
            f"onnxruntime {ort.__version__} cannot run the exported network: "
            f"{str(exc).splitlines()[0]}; pass a lower --opset (the default {OPSET} runs on "
            "onnxruntime 1.14 and later). Nothing was written"
        ) from exc
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max())
    if diff > TOLERANCE * max(1.0, float(np.abs(want).max())):
        raise CellsegError(
            f"the exported network's outputs differ from PyTorch's by up to {diff:.3g} "
            f"(allowed {TOLERANCE:g}); the export is not trustworthy. Nothing was written"
        )
    return diff


def export_onnx(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    opset: int = OPSET,
) -> Path:
    """Write a model's network as an ONNX file (``cellseg export MODEL --format onnx``).

    Parameters
    ----------
    model
        A model file, the yaml beside it, or a built-in model name.
    out
        The ONNX file to write (its folder is created if needed).
    overwrite
        Replace an existing ``out``.
    opset
        ONNX opset (default :data:`OPSET`).

    Returns
    -------
    Path
        ``out``, written atomically once the export has been checked.

    Raises
    ------
    CellsegError
        ``out`` exists (without ``overwrite``) or is the model file, the model cannot be
        exported (:func:`load_for_export`, :func:`onnx_model`); nothing is written then.
    """
    import onnx

    from napari_cellseg.io.outputs import atomic_path, refuse_existing, refuse_inputs

    out = Path(out)
    refuse_existing([out], overwrite=overwrite, what="ONNX file")
    net, ckpt = load_for_export(model)
    refuse_inputs([out], [ckpt.path, ckpt.path.with_suffix(".yaml")], "--out")
    proto = onnx_model(net, ckpt, opset=opset)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save(proto, tmp)
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The napari-cellseg metadata of an exported ONNX file, JSON values decoded.

    Parameters
    ----------
    path
        An ONNX file written by :func:`export_onnx`.

    Returns
    -------
    dict
        The keys of :func:`metadata` without their prefix; ``divisor`` an int, ``diameter`` a
        float, ``spec``, ``normalization``, ``outputs`` and ``card`` decoded from JSON.

    Raises
    ------
    CellsegError
        The file holds no napari-cellseg metadata.
    """
    import onnx

    proto = onnx.load(os.fspath(path), load_external_data=False)
    props = {
        p.key.removeprefix(PREFIX): p.value
        for p in proto.metadata_props
        if p.key.startswith(PREFIX)
    }
    if "divisor" not in props:
        raise CellsegError(f"{path} holds no napari-cellseg metadata: it was not exported by it")
    decoded: dict[str, Any] = {k: json.loads(v) if v[:1] in "[{" else v for k, v in props.items()}
    decoded["divisor"] = int(props["divisor"])
    decoded["diameter"] = float(props["diameter"])
    return decoded
