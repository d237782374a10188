"""``cellseg make-weights``: write a DeLTA ``wei/`` folder of pixel weight maps."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg make-weights``."""
    p = subparsers.add_parser(
        "make-weights",
        help="write pixel weight maps (wei/) for a U-Net training folder",
        description="Compute a weight map per mask (like DeLTA's make_weights) and write it to "
        "<DIR>/wei/<stem>.tif (float32). `cellseg train --architecture unet` uses wei/ files "
        "when present. A DeLTA tracking set (mot_dau/ + segall/) gets DeLTA's tracking "
        "weights (--halo_distance) instead.",
    )
    p.add_argument(
        "dir", help="training folder (DeLTA img/ + seg/, a tracking set, or Omnipose layout)"
    )
    p.add_argument(
        "--weight_map",
        default="seg_weights",
        choices=("seg_weights", "seg_weights_2D"),
        help="U-Net paper map (mother machine) or DeLTA's crowded-colony map",
    )
    p.add_argument("--w0", type=float, default=12.0, help="seg_weights: border weight w0")
    p.add_argument("--sigma", type=float, default=2.0, help="seg_weights: border width sigma")
    p.add_argument(
        "--halo_distance",
        type=float,
        default=50.0,
        help="tracking sets: distance over which other cells' weight falls off (pixels)",
    )
    p.add_argument("--output", help="output folder (default: <DIR>/wei)")
    p.add_argument("--overwrite", action="store_true", help="replace existing weight files")
    return p


def run(args: argparse.Namespace) -> int:
    """Write one weight map per mask."""
    import numpy as np
    from tqdm import tqdm

    from napari_cellseg.io import datasets
    from napari_cellseg.io.images import write_image
    from napari_cellseg.io.outputs import refuse_existing, refuse_inputs
    from napari_cellseg.targets.weights import (
        estimate_seg2D_classweights,
        seg_weights,
        seg_weights_2D,
    )

    if (Path(args.dir) / "mot_dau").is_dir() and (Path(args.dir) / "segall").is_dir():
        return _tracking_weights(args)
    ds = datasets.discover(args.dir)
    out = Path(args.output) if args.output else Path(ds.root) / "wei"
    targets = {s: out / f"{s.name}.tif" for s in ds.samples}
    inputs = [p for s in ds.samples for p in (s.image, s.mask) if p is not None]
    refuse_inputs(targets.values(), inputs, "--output")
    refuse_existing(targets.values(), overwrite=args.overwrite, what="weight file")
    masks = {s: datasets.load_mask(s) for s in ds.samples}
    out.mkdir(parents=True, exist_ok=True)
    if args.weight_map == "seg_weights_2D":
        cw = estimate_seg2D_classweights(list(masks.values()))
    else:
        cw = (1.0, 1.0)
    for sample, mask in tqdm(masks.items(), unit="mask", desc="make-weights"):
        if args.weight_map == "seg_weights":
            w = seg_weights(mask, classweights=cw, w0=args.w0, sigma=args.sigma)
        else:
            w = seg_weights_2D(mask, classweights=cw)
        write_image(targets[sample], np.asarray(w, dtype=np.float32))
    print(f"wrote {len(masks)} weight map(s) to {out}")
    return 0


def _tracking_weights(args: argparse.Namespace) -> int:
    """wei/ of a DeLTA tracking set: ``tracking_weights(mot_dau, segall)`` per sample."""
    import numpy as np

    from napari_cellseg.errors import CellsegError
    from napari_cellseg.io.images import read_mask, write_image
    from napari_cellseg.io.outputs import refuse_existing, refuse_inputs
    from napari_cellseg.track.samples import files_by_stem
    from napari_cellseg.track.weights import tracking_weights

    root = Path(args.dir)
    out = Path(args.output) if args.output else root / "wei"
    mot_dau, segall = (files_by_stem(root / f) for f in ("mot_dau", "segall"))
    lonely = sorted(set(mot_dau) - set(segall))
    if lonely:
        raise CellsegError(f"{root}: {lonely[0]} is in mot_dau/ but not in segall/")
    targets = {stem: out / f"{stem}.tif" for stem in mot_dau}
    refuse_inputs(targets.values(), [*mot_dau.values(), *segall.values()], "--output")
    refuse_existing(targets.values(), overwrite=args.overwrite, what="weight file")
    out.mkdir(parents=True, exist_ok=True)
    for stem, path in mot_dau.items():
        w = tracking_weights(read_mask(path), read_mask(segall[stem]), args.halo_distance)
        write_image(targets[stem], np.asarray(w, dtype=np.float32))
    print(f"wrote {len(targets)} tracking weight map(s) to {out}")
    return 0
