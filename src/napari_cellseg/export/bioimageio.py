"""bioimage.io model packages: the network with its weights, tests, cover and documentation.

>>> export_bioimageio("nuclei", "nuclei.zip")               # doctest: +SKIP

A package (a zip file, or a folder when ``out`` does not end in ``.zip``) holds::

    rdf.yaml                 the description, format FORMAT_VERSION (0.5)
    weights.onnx             the network as ONNX (napari_cellseg.export.onnx, opset 18)
    weights_torchscript.pt   the same network as TorchScript (traced)
    test_input.npy           a raw image (before normalisation), (1, nchan, Y, X) float32
    test_output.npy          the network's raw outputs for it, (1, n_outputs, Y, X) float32
    sample_input.tif,        the same two as TIFF images, for people
    sample_output.tif
    cover.png                that image beside the instance masks napari-cellseg makes of it
    README.md                what the outputs mean, how masks are made, the model card

The weights are TorchScript and ONNX because both run without this package: TorchScript in
the Java tools (deepImageJ, QuPath's extension, through the Deep Java Library) and in
bioimageio.core, ONNX in ilastik, BiaPy and bioimageio.core through onnxruntime. A
``pytorch_state_dict`` entry would need this package's network code as its architecture source
and napari-cellseg installed to run it, so it is left out.

The description declares the input axes (batch, channel, y, x; y and x any multiple of the
network's downsampling factor from that factor up), the percentile normalisation of the
Segmenter as a ``scale_range`` preprocessing (per image and channel, percentiles 1 and 99.8),
and the output channels with their meaning. The network ends at its raw maps: the
reconstruction of instance labels (flows -> masks for ``omni``, threshold and watershed for
``unet``, seeds and growth for ``dcan``) is napari-cellseg's and stays outside the package; its
README says how a consumer gets masks.

The package is built in a hidden temporary folder beside ``out``, validated with
``bioimageio.spec`` and only then moved (or zipped) into place: a package that fails validation
leaves nothing behind. bioimageio.spec, torch and onnx are imported inside the functions.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.export.onnx import OPSET, TOLERANCE, load_for_export, onnx_model, quiet_export
from napari_cellseg.families import get_family

if TYPE_CHECKING:
    import torch

    from napari_cellseg.models.checkpoint import Checkpoint
    from napari_cellseg.predict import Segmenter

#: The bioimage.io model description format written (0.5, read by bioimageio.spec >= 0.5.4).
FORMAT_VERSION = "0.5.4"
#: Default licence of the package's weights (an SPDX identifier).
LICENSE = "CC-BY-4.0"
#: Authors of the built-in models.
BUILTIN_AUTHORS = ("napari-cellseg developers",)
#: Largest edge of the test image (a centre crop of the given image).
TEST_SIZE = 256
#: The files of a package.
RDF, ONNX_FILE, TORCHSCRIPT_FILE = "rdf.yaml", "weights.onnx", "weights_torchscript.pt"
TEST_INPUT, TEST_OUTPUT, COVER, README = (
    "test_input.npy",
    "test_output.npy",
    "cover.png",
    "README.md",
)
SAMPLE_INPUT, SAMPLE_OUTPUT = "sample_input.tif", "sample_output.tif"


def sample_image(raw: np.ndarray | None, seg: Segmenter) -> np.ndarray:
    """The package's test input: raw values, float32 ``(nchan, Y, X)``, Y and X multiples of the
    network's divisor, at most :data:`TEST_SIZE`.

    Parameters
    ----------
    raw
        A 2D image (multichannel as the model's training took it; the first frame of a stack),
        or None for a synthetic nuclei image (:func:`napari_cellseg.synth.nuclei`).
    seg
        The model, for its channels and divisor.

    Raises
    ------
    CellsegError
        The image is smaller than the divisor or has too few channels.
    """
    from napari_cellseg.io.images import is_stack, iter_frames, to_cyx
    from napari_cellseg.preprocess import select_channels

    if raw is None:
        from napari_cellseg.synth import nuclei

        raw = nuclei((TEST_SIZE, TEST_SIZE), seed=0)[0]
        if seg.spec.nchan > 1:  # the same image in every channel the model takes
            raw = np.stack([raw] * seg.spec.nchan)
    channels = seg.channels
    nchan = None if channels.chan else channels.nchan
    raw = np.asarray(raw)
    if is_stack(raw, channel_axis=channels.channel_axis, nchan=nchan):
        frame = next(iter(iter_frames(raw, channel_axis=channels.channel_axis, nchan=nchan)))
    else:
        frame = to_cyx(raw, channel_axis=channels.channel_axis)
    image = select_channels(frame, channels, source="--image")
    d = seg.spec.divisor()
    size = [min(TEST_SIZE, n) // d * d for n in image.shape[1:]]
    if min(size) < d:
        raise CellsegError(
            f"--image of {image.shape[1]}x{image.shape[2]} pixels is smaller than the "
            f"network's {d}x{d} minimum: give a larger image"
        )
    top, left = ((n - s) // 2 for n, s in zip(image.shape[1:], size))
    return np.ascontiguousarray(
        image[:, top : top + size[0], left : left + size[1]], dtype=np.float32
    )


def export_bioimageio(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    opset: int = OPSET,
    image: np.ndarray | None = None,
    authors: Sequence[str] | None = None,
    license: str = LICENSE,
) -> Path:
    """Write a validated bioimage.io model package (``cellseg export --format bioimageio``).

    Parameters
    ----------
    model
        A model file, the yaml beside it, or a built-in model name.
    out
        ``*.zip`` for a zipped package, any other path for a package folder (it must not exist,
        be empty, or, with ``overwrite``, be an earlier package: it then holds ``rdf.yaml``).
    overwrite
        Replace an existing zip file or package folder.
    opset
        ONNX opset of ``weights.onnx``.
    image
        A raw 2D image for the test tensors and the cover (a centre crop of at most
        :data:`TEST_SIZE` pixels); None for a synthetic nuclei image.
    authors
        Names of the model's authors; None is allowed for a built-in model only
        (:data:`BUILTIN_AUTHORS`).
    license
        SPDX identifier of the weights' licence.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    CellsegError
        ``out`` is taken, the model cannot be exported, the authors are missing, or the package
        fails validation (the message lists the errors); nothing is written then.
    """
    from napari_cellseg.models.builtin import BUILTIN
    from napari_cellseg.predict import Segmenter

    out = Path(out)
    zipped = out.suffix.lower() == ".zip"
    _refuse_out(out, zipped=zipped, overwrite=overwrite)
    if not authors:
        if str(model) not in BUILTIN:
            raise CellsegError(
                "a bioimage.io package names its authors: pass --author NAME (once per "
                "author). Nothing was written"
            )
        authors = BUILTIN_AUTHORS
    net, ckpt = load_for_export(model)
    seg = Segmenter(copy.deepcopy(net), ckpt.spec, ckpt.meta, device="cpu", name=ckpt.path.stem)
    raw = sample_image(image, seg)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_package(build, net, ckpt, seg, raw, list(authors), license, opset)
        validate_package(build / RDF)
        if zipped:
            _zip_into(build, out)
        else:
            _move_into(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return out


def validate_package(path: str | os.PathLike) -> Any:
    """Load a package (its ``rdf.yaml``, folder or zip) with ``bioimageio.spec``.

    Returns
    -------
    bioimageio.spec.ModelDescr
        The description, valid.

    Raises
    ------
    CellsegError
        Listing the validation errors.
    """
    from bioimageio.spec import InvalidDescr, load_description

    with quiet_export():
        descr = load_description(Path(path), perform_io_checks=True)
    summary = descr.validation_summary
    if isinstance(descr, InvalidDescr) or summary.status == "failed":
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e.loc) or 'rdf'}: {e.msg}" for e in summary.errors[:5]
        )
        raise CellsegError(
            f"the bioimage.io package fails validation with bioimageio.spec: {errors}. "
            "Nothing was written"
        )
    return descr


def _refuse_out(out: Path, *, zipped: bool, overwrite: bool) -> None:
    """Refuse an ``out`` that is taken (see :func:`export_bioimageio`)."""
    from napari_cellseg.io.outputs import refuse_existing

    if zipped:
        refuse_existing([out], overwrite=overwrite, what="bioimage.io package")
        return
    if out.is_file():
        raise CellsegError(
            f"{out} is a file: a package folder would be written there; give a folder, or a "
            "name ending in .zip for a zipped package. Nothing was written"
        )
    if out.is_dir() and any(out.iterdir()):
        if not (out / RDF).is_file():
            raise CellsegError(
                f"{out} is a folder with other files in it and not a bioimage.io package: give "
                "a new or empty folder. Nothing was written"
            )
        if not overwrite:
            raise CellsegError(
                f"{out} already holds a bioimage.io package: pass --overwrite to replace it, "
                "or choose another --out. Nothing was written"
            )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_package(
    folder: Path,
    net: torch.nn.Module,
    ckpt: Checkpoint,
    seg: Segmenter,
    raw: np.ndarray,
    authors: list[str],
    license: str,
    opset: int,
) -> None:
    """Every file of the package, checked against PyTorch, into ``folder`` (``seg``: the model
    as the Segmenter runs it, for the cover's masks)."""
    import tifffile
    import torch
    import yaml

    from napari_cellseg.normalize import normalize_percentile
    from napari_cellseg.preprocess import NORMALIZATION

    normalization = ckpt.meta.get("normalization") or NORMALIZATION
    x = normalize_percentile(raw, normalization["low"], normalization["high"])[None]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    tolerance = _tolerance(want)
    np.save(folder / TEST_INPUT, raw[None])
    np.save(folder / TEST_OUTPUT, want)
    tifffile.imwrite(folder / SAMPLE_INPUT, raw[None], photometric="minisblack")
    tifffile.imwrite(folder / SAMPLE_OUTPUT, want, photometric="minisblack")
    (folder / ONNX_FILE).write_bytes(
        onnx_model(net, ckpt, opset=opset, check=x).SerializeToString()
    )
    _write_torchscript(folder / TORCHSCRIPT_FILE, net, x, want)
    _write_cover(folder / COVER, seg, x[0])
    (folder / README).write_text(documentation(ckpt, opset), encoding="utf-8")
    rdf = description(
        ckpt, folder, authors=authors, license=license, opset=opset, tolerance=tolerance
    )
    (folder / RDF).write_text(yaml.safe_dump(rdf, sort_keys=False), encoding="utf-8")


def _tolerance(output: np.ndarray) -> float:
    """The absolute tolerance of the reproduction of ``output`` declared in the package.

    bioimage.io allows at most 1 % of the test output's maximum; below :data:`TOLERANCE` the
    exported weights could not be told to reproduce it.

    Raises
    ------
    CellsegError
        The test output's maximum is below ``100 * TOLERANCE``: the network sees (almost)
        nothing in the test image.
    """
    top = float(output.max())
    if top * 0.01 < TOLERANCE:
        raise CellsegError(
            f"the network's outputs on the test image reach only {top:.3g}: it finds (almost) "
            "nothing there, and bioimage.io cannot check the weights against such a test "
            "output. Pass --image with an image of the cells the model segments. Nothing "
            "was written"
        )
    return min(1e-3, top * 0.01)


def _write_torchscript(path: Path, net: torch.nn.Module, x: np.ndarray, want: np.ndarray) -> None:
    """Trace ``net`` on ``x``, save it and check that the saved module reproduces ``want``."""
    import torch

    with quiet_export(), torch.no_grad():
        traced = torch.jit.trace(net, torch.from_numpy(x))
        torch.jit.save(traced, str(path))
        got = torch.jit.load(str(path))(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max())
    if diff > TOLERANCE * max(1.0, float(np.abs(want).max())):
        raise CellsegError(
            f"the TorchScript network's outputs differ from PyTorch's by up to {diff:.3g} "
            f"(allowed {TOLERANCE:g}). Nothing was written"
        )


def _write_cover(path: Path, seg: Segmenter, image: np.ndarray) -> None:
    """The test image beside its instance masks (napari-cellseg's reconstruction), PNG."""
    from PIL import Image

    from napari_cellseg.overlay import outline_rgb

    labels = seg.segment(image).labels
    plain = outline_rgb(image, np.zeros_like(labels))
    Image.fromarray(np.concatenate([plain, outline_rgb(image, labels)], axis=1)).save(path)


def _name(ckpt: Checkpoint) -> str:
    """The package's name: letters, digits, ``_-()`` and spaces only."""
    stem = re.sub(r"[^A-Za-z0-9_\-() ]+", " ", ckpt.path.stem).strip() or "model"
    return f"napari-cellseg {stem} ({ckpt.spec.arch})"


def description(
    ckpt: Checkpoint,
    folder: Path,
    *,
    authors: list[str],
    license: str,
    opset: int,
    tolerance: float,
) -> dict[str, Any]:
    """The ``rdf.yaml`` content of a package whose other files are in ``folder``.

    Parameters
    ----------
    ckpt
        The model.
    folder
        The package folder (for the files' SHA-256).
    authors, license, opset
        As in :func:`export_bioimageio`.
    tolerance
        Absolute tolerance of the reproduction of the test output (relative: 1e-3).

    Returns
    -------
    dict
        A bioimage.io model description of format :data:`FORMAT_VERSION`.
    """
    import torch

    from napari_cellseg import __version__
    from napari_cellseg.preprocess import NORMALIZATION

    spec, family = ckpt.spec, get_family(ckpt.spec.arch)
    d = spec.divisor()
    normalization = ckpt.meta.get("normalization") or NORMALIZATION
    space = [{"type": "space", "id": axis, "size": {"min": d, "step": d}} for axis in ("y", "x")]
    same = [
        {"type": "space", "id": axis, "size": {"tensor_id": "raw", "axis_id": axis}}
        for axis in ("y", "x")
    ]
    outputs = family.output_channels(spec, ckpt.meta)
    torch_version = torch.__version__.split("+")[0]
    return {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": _name(ckpt),
        "description": str(ckpt.meta.get("description") or family.summary)[:1024],
        "authors": [{"name": a} for a in authors],
        "cite": [{"text": text, "doi": doi} for text, doi in family.cite],
        "license": license,
        "tags": ["cell-segmentation", "instance-segmentation", "2d", "napari-cellseg", spec.arch],
        "documentation": README,
        "covers": [COVER],
        "inputs": [
            {
                "id": "raw",
                "description": "image, any intensity range (normalised by the preprocessing)",
                "axes": [
                    {"type": "batch"},
                    {
                        "type": "channel",
                        "channel_names": [f"channel{k}" for k in range(spec.nchan)],
                    },
                    *space,
                ],
                "test_tensor": {"source": TEST_INPUT, "sha256": _sha256(folder / TEST_INPUT)},
                "sample_tensor": {
                    "source": SAMPLE_INPUT,
                    "sha256": _sha256(folder / SAMPLE_INPUT),
                },
                "data": {"type": "float32"},
                "preprocessing": [
                    {
                        "id": "scale_range",
                        "kwargs": {
                            "axes": ["y", "x"],
                            "min_percentile": float(normalization["low"]),
                            "max_percentile": float(normalization["high"]),
                        },
                    }
                ],
            }
        ],
        "outputs": [
            {
                "id": "maps",
                "description": f"raw {spec.arch} maps: {', '.join(n for n, _ in outputs)} "
                "(see README.md)",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": [n for n, _ in outputs]},
                    *same,
                ],
                "test_tensor": {"source": TEST_OUTPUT, "sha256": _sha256(folder / TEST_OUTPUT)},
                "sample_tensor": {
                    "source": SAMPLE_OUTPUT,
                    "sha256": _sha256(folder / SAMPLE_OUTPUT),
                },
                "data": {"type": "float32"},
            }
        ],
        "weights": {
            "torchscript": {
                "source": TORCHSCRIPT_FILE,
                "sha256": _sha256(folder / TORCHSCRIPT_FILE),
                "pytorch_version": torch_version,
                "comment": f"traced from {ckpt.path.name} with torch {torch_version}",
            },
            "onnx": {
                "source": ONNX_FILE,
                "sha256": _sha256(folder / ONNX_FILE),
                "opset_version": opset,
                "parent": "torchscript",
                "comment": f"exported from {ckpt.path.name} with torch {torch_version} "
                "(like the TorchScript weights)",
            },
        },
        "config": {
            "bioimageio": {
                "reproducibility_tolerance": [
                    {"relative_tolerance": 1e-3, "absolute_tolerance": tolerance}
                ]
            },
            "napari-cellseg": {
                "version": __version__,
                "model": ckpt.path.name,
                "spec": spec.to_dict(),
                "normalization": dict(normalization),
                "divisor": d,
                "diameter": float(ckpt.meta.get("diameter") or 0.0),
                "reconstruction": {
                    f.name: f.default for f in fields(family.Params) if f.default is not None
                },
            },
        },
    }


def documentation(ckpt: Checkpoint, opset: int) -> str:
    """The package's ``README.md``: input, outputs, how masks are made, limits, the model card.

    Parameters
    ----------
    ckpt
        The model.
    opset
        The ONNX opset of its weights.
    """
    from napari_cellseg.export.card import card_markdown, model_card

    spec, family = ckpt.spec, get_family(ckpt.spec.arch)
    d = spec.divisor()
    diameter = float(ckpt.meta.get("diameter") or 0.0)
    card = re.sub(r"^#", "###", card_markdown(model_card(ckpt)), flags=re.MULTILINE)
    params = "\n".join(
        f"| `{f.name}` | {'automatic' if f.default is None else f.default} | {f.metadata['help']} |"
        for f in fields(family.Params)
    )
    size = (
        f"The model was trained on cells about {diameter:g} pixels across: resize images whose "
        f"cells are much smaller or larger by {diameter:g} / (their diameter) first, as "
        "`cellseg predict --diameter` does."
        if diameter
        else "The model was trained on images as they were (no cell diameter): give it images "
        "at the scale of its training data."
    )
    rows = "\n".join(
        f"| {k} | `{name}` | {meaning} |"
        for k, (name, meaning) in enumerate(family.output_channels(spec, ckpt.meta))
    )
    return f"""# {_name(ckpt)}

{ckpt.meta.get("description") or family.summary}. A napari-cellseg `{spec.arch}` model
({family.summary}) exported as a bioimage.io model package.

## Input

`raw`: a 2D image with {spec.nchan} channel(s), axes (batch, channel, y, x), float32. Height
and width must be multiples of {d} (the network halves the image {len(spec.nbase) - 1} times);
pad other images (napari-cellseg pads by reflection) and crop the outputs back. The
preprocessing normalises each channel of each image so that its 1st and 99.8th percentiles
map to 0 and 1, without clipping, exactly as napari-cellseg does before its network. {size}

## Outputs

`maps`: the network's raw outputs, axes (batch, channel, y, x), the input's size:

| channel | name | meaning |
|---|---|---|
{rows}

## From the outputs to cell masks

The package ends at these maps. The instance masks (one integer label per cell) come from
napari-cellseg's `{spec.arch}` reconstruction, which is not a network and is not in the
package. To get masks:

- `cellseg predict --model {ckpt.path.name} --dir images/ --output masks/` with napari-cellseg
  (`pip install napari-cellseg`) and the original model file, or the Segment widget of the
  napari plugin. Both also tile large images and resize to the cell diameter.
- From the maps alone, in any tool (deepImageJ, ilastik, QuPath, BiaPy): read the channels
  as the table above says. A probability thresholded at 0.5 gives a semantic (cell or not)
  mask; separating touching cells, and following flows, is the reconstruction's work, whose
  parameters and defaults in napari-cellseg are:

| parameter | default | meaning |
|---|---|---|
{params}

## Weights

TorchScript (`{TORCHSCRIPT_FILE}`) and ONNX opset {opset} (`{ONNX_FILE}`), both checked against
the PyTorch model on the test image (largest difference at most {TOLERANCE:g}). The ONNX file
also carries napari-cellseg's metadata (`napari_cellseg.*` metadata properties).

## Validation

The package was validated with bioimageio.spec when it was written. `{TEST_INPUT}` is a
centre crop of a real image (or of a synthetic one from `napari_cellseg.synth` when none was
given) and `{TEST_OUTPUT}` PyTorch's outputs for it; `{COVER}` shows that image beside the
masks napari-cellseg's reconstruction makes of those outputs. The model card below gives the
model's training data and its validation metrics, when they were recorded.

## Model card

{card}"""


def _zip_into(folder: Path, out: Path) -> None:
    """Zip the package ``folder`` into ``out`` (atomically)."""
    from napari_cellseg.io.outputs import atomic_path

    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, file.name)


def _move_into(folder: Path, out: Path) -> None:
    """Move the package ``folder`` onto ``out``, replacing an earlier package there."""
    if out.is_dir():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(folder, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(folder, out)
