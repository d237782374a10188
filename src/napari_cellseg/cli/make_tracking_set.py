"""``cellseg make-tracking-set``: write DeLTA's six tracking folders from a labelled movie."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg make-tracking-set``."""
    p = subparsers.add_parser(
        "make-tracking-set",
        help="write DeLTA's tracking folders (previmg seg img segall mot_dau wei) from a movie",
        description="One sample per cell and frame: the window centred on the cell at t-1 "
        "(seg/), the images at t-1 and t, all cells at t (segall/), what the cell became at t "
        "(mot_dau/: itself, or its two daughters) and DeLTA's tracking weights (wei/). "
        "`cellseg train --architecture track --dir` reads these folders, or the sequence "
        "itself (no need to write them).",
    )
    p.add_argument(
        "sequence",
        help="a Cell Tracking Challenge sequence folder (01/ with 01_GT/TRA beside it) or its "
        "01_GT/TRA folder",
    )
    p.add_argument("--out", required=True, help="folder to write the six folders into")
    p.add_argument("--gt", help="the ground truth (01_GT or 01_GT/TRA) when not beside it")
    p.add_argument(
        "--tyx", default="256,256", help="window size H,W (DeLTA: 256,256; mother machine 256,32)"
    )
    p.add_argument("--frames", help="only frames A:B (t-1 >= A, t < B)")
    p.add_argument(
        "--diameter", type=float, default=0.0, help="resize so cells have this diameter (0: no)"
    )
    p.add_argument("--no_weights", action="store_true", help="do not write wei/")
    p.add_argument("--overwrite", action="store_true", help="replace existing sample files")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the samples and write them."""
    from napari_cellseg.config import _parse_tyx
    from napari_cellseg.errors import CellsegError
    from napari_cellseg.track import folders
    from napari_cellseg.track.samples import items_from_sequence, write_tracking_set

    size = _parse_tyx(args.tyx)
    frames = None
    if args.frames:
        try:
            first, stop = (int(v) for v in args.frames.split(":"))
        except ValueError:
            raise CellsegError(f"--frames takes A:B (e.g. 0:40), not {args.frames!r}") from None
        if first < 0 or stop <= first + 1:
            raise CellsegError(
                f"--frames {args.frames}: needs 0 <= A and A + 1 < B (a pair of frames at least)"
            )
        frames = (first, stop)
    seq = folders.read_sequence(args.sequence, args.gt)
    if seq.images is None or seq.labels is None or seq.tracks is None:
        raise CellsegError(
            f"{args.sequence}: needs images and a tracking ground truth (man_track.txt + "
            "man_trackNNN.tif); pass --gt when it is not beside the sequence"
        )
    items = items_from_sequence(
        seq.images, seq.labels, seq.tracks, name=seq.name, frames=frames, diameter=args.diameter
    )
    if not items:
        raise CellsegError(
            f"{args.sequence}: no cell in frames {frames or 'all'} has a next frame; nothing "
            "was written"
        )
    n = write_tracking_set(
        items, args.out, (size[0], size[-1]), weights=not args.no_weights, overwrite=args.overwrite
    )
    divisions = sum(it.divides for it in items)
    print(f"wrote {n} tracking samples ({divisions} divisions) to {args.out}")
    return 0
