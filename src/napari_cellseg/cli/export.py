"""``cellseg export``: a model as an ONNX file or a bioimage.io model package."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``cellseg export``."""
    from napari_cellseg.export.bioimageio import LICENSE, TEST_SIZE
    from napari_cellseg.export.onnx import MIN_OPSET, OPSET

    p = subparsers.add_parser(
        "export",
        help="export a segmentation model as ONNX or as a bioimage.io model package",
        description="Export the network of a segmentation model (omni, unet, dcan). "
        f"--format onnx writes one ONNX file (opset {OPSET} by default; dynamic batch, height and "
        "width, which must be multiples of the network's downsampling factor; the spec, the "
        "normalisation and the meaning of the outputs in its metadata). --format bioimageio "
        "writes a bioimage.io model package (a zip when --out ends in .zip, else a folder): "
        "TorchScript and ONNX weights, test tensors, a cover image and a README, validated "
        "with bioimageio.spec. Both end at the network's raw maps: the reconstruction of "
        "masks stays in `cellseg predict`. Needs napari-cellseg[export].",
    )
    p.add_argument("model", help="model file (.pt), the yaml beside it, or a built-in name")
    p.add_argument("--format", required=True, choices=("onnx", "bioimageio"), dest="fmt")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="the ONNX file; for bioimageio a .zip file or a package folder",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--opset",
        type=int,
        default=OPSET,
        help=f"ONNX opset (default {OPSET}; at least {MIN_OPSET}, the lowest torch writes)",
    )
    bio = p.add_argument_group("bioimageio")
    bio.add_argument(
        "--image",
        type=Path,
        help="a real image for the test tensors and the cover (a centre crop of at most "
        f"{TEST_SIZE}x{TEST_SIZE} pixels; default: a synthetic nuclei image)",
    )
    bio.add_argument(
        "--author",
        action="append",
        help="an author of the model, once per author (needed except for built-in models)",
    )
    bio.add_argument("--license", default=LICENSE, help=f"SPDX licence of the weights ({LICENSE})")
    return p


def run(args: argparse.Namespace) -> int:
    """Export, then say what was written."""
    from napari_cellseg.errors import CellsegError

    if args.fmt == "onnx":
        if args.image or args.author:
            raise CellsegError("--image and --author belong to --format bioimageio")
        from napari_cellseg.export.onnx import export_onnx, read_metadata

        out = export_onnx(args.model, args.out, overwrite=args.overwrite, opset=args.opset)
        divisor = read_metadata(out)["divisor"]
        print(
            f"wrote {out} (ONNX opset {args.opset}; input float32 (batch, channels, height, "
            f"width), height and width multiples of {divisor}, normalised as in its metadata)"
        )
        return 0
    from napari_cellseg.export.bioimageio import export_bioimageio

    image = None
    if args.image:
        from napari_cellseg.io.images import read_image

        image = read_image(args.image)
    out = export_bioimageio(
        args.model,
        args.out,
        overwrite=args.overwrite,
        opset=args.opset,
        image=image,
        authors=args.author,
        license=args.license,
    )
    print(f"wrote the bioimage.io package {out} (validated with bioimageio.spec)")
    return 0
