"""``cellseg import-cellpose``: carry a Cellpose/Omnipose CPnet state dict over, or say why not."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg import-cellpose``."""
    p = subparsers.add_parser(
        "import-cellpose",
        help="convert a Cellpose/Omnipose CPnet state dict into a model file, or say why not",
        description="Read a Cellpose/Omnipose model file (a CPnet state dict, read with "
        "torch.load(weights_only=True): a file that is a whole pickled model is refused "
        "unread) and compare its layers with this package's network. A CPnet's layers do not "
        "match this package's residual U-Net (docs/models.md), so the command names the first "
        "weight that does not fit and what an import would need, and writes nothing.",
    )
    p.add_argument("state_dict", metavar="STATE_DICT", help="the Cellpose/Omnipose model file")
    p.add_argument("--out", required=True, metavar="MODEL.pt", help="the model file to write")
    p.add_argument(
        "--nclasses",
        type=int,
        choices=(2, 3),
        help="omni outputs to compare with: 2 flow + distance, 3 + boundary "
        "(default: from the CPnet's outputs)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Check the output, then compare the CPnet with this package's network."""
    from pathlib import Path

    from napari_cellseg.errors import CellsegError
    from napari_cellseg.io.outputs import refuse_existing, refuse_inputs
    from napari_cellseg.models.convert import import_problem

    out = Path(args.out)
    refuse_inputs([out, out.with_suffix(".yaml")], [Path(args.state_dict)], "--out")
    refuse_existing([out, out.with_suffix(".yaml")], overwrite=args.overwrite, what="model file")
    raise CellsegError(import_problem(args.state_dict, args.nclasses) + ". Nothing was written")
