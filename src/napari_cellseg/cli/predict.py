"""``cellseg predict``: segment a folder of images into ``<base>_masks.tif`` files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg predict``."""
    p = subparsers.add_parser(
        "predict",
        help="segment images with a trained or built-in model",
        description="Segment every image of a folder. Writes <base>_masks.tif per image into "
        "--output (never over an input file).",
    )
    p.add_argument(
        "--model",
        "--pretrained_model",
        help="model file, the yaml written beside it, or a built-in name",
    )
    p.add_argument("--config", help="CLB style: the yaml written beside a model")
    p.add_argument("--dir", "--test_data", dest="dir", required=True, help="folder of images")
    p.add_argument(
        "--output", "--savedir", dest="output", help="output folder (default: <dir>/cellseg_masks)"
    )
    p.add_argument("--img_filter", default="", help="image name suffix, e.g. _img")
    p.add_argument("--look_one_level_down", action="store_true", help="also read subfolders")
    p.add_argument("--channel_axis", type=int, default=None, help="axis of the channels")
    p.add_argument(
        "--save_flows",
        action="store_true",
        help="also write the network outputs as <base>_flows.tif",
    )
    p.add_argument(
        "--save_png",
        action="store_true",
        help="also write <base>_outlines.png, the outlines drawn on the image",
    )
    p.add_argument(
        "--diameter",
        type=float,
        default=0.0,
        help="mean cell diameter in the images, in pixels; images are resized to the diameter "
        "the model was trained for (0: no resizing; default: %(default)s)",
    )
    g = p.add_argument_group("reconstruction (omni)")
    g.add_argument(
        "--mask_threshold",
        type=float,
        default=None,
        help="distance threshold for foreground (default 0)",
    )
    g.add_argument(
        "--flow_threshold",
        type=float,
        default=None,
        help="drop masks whose flows disagree more than this (0 disables; default 0.4)",
    )
    g.add_argument("--niter", type=int, default=None, help="Euler steps (default: automatic)")
    g = p.add_argument_group("reconstruction (unet, dcan)")
    g.add_argument(
        "--threshold", type=float, default=None, help="probability threshold (default 0.5)"
    )
    p.add_argument("--min_size", type=int, default=None, help="smallest object kept (pixels)")
    g = p.add_argument_group("inference")
    g.add_argument(
        "--tile", type=int, default=768, help="largest tile edge in pixels (default: %(default)s)"
    )
    g.add_argument(
        "--batch_size", type=int, default=None, help="tiles per batch (default: by tile size)"
    )
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    g.add_argument("--use_gpu", action="store_true", help="Omnipose flag (same as --device auto)")
    return p


def _postprocess_params(args: argparse.Namespace, arch: str) -> dict:
    from napari_cellseg.predict import POSTPROCESS_DEFAULTS

    names = POSTPROCESS_DEFAULTS[arch]
    given = {
        k: getattr(args, k)
        for k in ("mask_threshold", "flow_threshold", "niter", "threshold", "min_size")
        if getattr(args, k) is not None
    }
    wrong = set(given) - set(names)
    if wrong:
        raise CellsegError(
            f"{', '.join('--' + w for w in sorted(wrong))} do(es) not apply to {arch} models; "
            f"use {', '.join('--' + n for n in names)}"
        )
    return given


def run(args: argparse.Namespace) -> int:
    """Segment each image and write its masks."""
    from tqdm import tqdm

    from napari_cellseg.io import datasets
    from napari_cellseg.io.images import write_mask
    from napari_cellseg.predict import Segmenter

    model = args.model or args.config
    if not model:
        raise CellsegError("pass --model MODEL (a model file, its yaml, or a built-in name)")
    src = Path(args.dir).expanduser().resolve()
    out = Path(args.output).expanduser().resolve() if args.output else src / "cellseg_masks"
    ds = datasets.discover(
        src,
        "omnipose",
        img_filter=args.img_filter,
        look_one_level_down=args.look_one_level_down,
        require_masks=False,
    )
    if not ds.samples:
        raise CellsegError(f"no images found in {src}")
    inputs = {s.image.resolve() for s in ds.samples} | {
        s.mask.resolve() for s in ds.samples if s.mask is not None
    }
    bases = {s: s.name.replace("/", "_") for s in ds.samples}
    clash = [out / f"{b}_masks.tif" for b in bases.values()]
    clash = [t for t in clash if t.resolve() in inputs]
    if clash:  # checked before any work, so that nothing is written
        raise CellsegError(
            f"{clash[0]} is an input file; choose another --output (or move the masks away)"
        )
    seg = Segmenter.from_file(
        model,
        device="auto" if args.use_gpu else args.device,
        tile=args.tile,
        batch_size=args.batch_size,
        diameter=args.diameter,
    )
    params = _postprocess_params(args, seg.arch)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for sample in tqdm(ds.samples, unit="image", desc="predict", dynamic_ncols=True):
        raw = datasets.load_image(sample)
        results = list(
            seg.segment_raw(raw, channel_axis=args.channel_axis, source=str(sample.image), **params)
        )
        labels = results[0].labels if len(results) == 1 else np.stack([r.labels for r in results])
        write_mask(out / f"{bases[sample]}_masks.tif", labels)
        written += 1
        if args.save_flows:
            _write_flows(out / f"{bases[sample]}_flows.tif", results)
        if args.save_png:
            from napari_cellseg.overlay import save_outline_png

            frame = seg.prepare(raw, channel_axis=args.channel_axis)[0]
            save_outline_png(out / f"{bases[sample]}_outlines.png", frame, results[0].labels)
    print(f"wrote {written} mask file(s) to {out}")
    return 0


def _write_flows(path: Path, results) -> None:
    from napari_cellseg.io.images import write_image

    stacks = []
    for r in results:
        maps = []
        for arr in r.outputs.values():
            maps.extend(arr if arr.ndim == 3 else [arr])
        stacks.append(np.stack(maps).astype(np.float32))
    write_image(path, stacks[0] if len(stacks) == 1 else np.stack(stacks))
