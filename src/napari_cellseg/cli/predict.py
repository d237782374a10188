"""``cellseg predict``: segment a folder of images into ``<base>_masks.tif`` files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.predict.config import (
    PredictConfig,
    add_predict_arguments,
    is_options_file,
    predict_config_from_args,
)

if TYPE_CHECKING:
    from napari_cellseg.io.datasets import Sample
    from napari_cellseg.predict import Segmenter


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg predict``."""
    p = subparsers.add_parser(
        "predict",
        help="segment images with a trained or built-in model",
        description="Segment every image of a folder. Writes <base>_masks.tif per image into "
        "--output, a folder other than the input folder; files already there are replaced "
        "only with --overwrite. An image that cannot be read or segmented is reported at the "
        "end (exit status 1) and the others are still written.",
    )
    p.add_argument(
        "--config",
        help="a yaml of the options below (under 'predict:' or at the top level; flags given "
        "here win), or, CLB style, the yaml written beside a model (= --model)",
    )
    p.add_argument("--dir", "--test_data", dest="dir", required=True, help="folder of images")
    p.add_argument(
        "--output", "--savedir", dest="output", help="output folder (default: <dir>/cellseg_masks)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that already exist (never an input file)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first image that fails (default: go on, list the failures at the "
        "end and exit with status 1)",
    )
    p.add_argument("--img_filter", default="", help="image name suffix, e.g. _img")
    p.add_argument("--look_one_level_down", action="store_true", help="also read subfolders")
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
    add_predict_arguments(p)
    return p


def options(args: argparse.Namespace) -> PredictConfig:
    """The prediction options: ``--config`` (an options yaml or a model's yaml) and the flags."""
    model_yaml = bool(args.config) and not is_options_file(args.config)
    config = predict_config_from_args(args, None if model_yaml else args.config)
    if model_yaml and not config.model:
        config.model = args.config
    if not config.model:
        raise CellsegError("pass --model MODEL (a model file, its yaml, or a built-in name)")
    return config


def run(args: argparse.Namespace) -> int:
    """Segment each image and write its masks; 1 if some images failed, 0 if none did."""
    from tqdm import tqdm

    from napari_cellseg.io import datasets
    from napari_cellseg.io.outputs import refuse_existing
    from napari_cellseg.predict import Segmenter

    config = options(args)
    # the model and its reconstruction options first: a mistyped name is the likelier mistake
    seg = Segmenter.from_config(config)
    params = config.params_for(seg.arch)
    src = Path(args.dir).expanduser().resolve()
    out = Path(args.output).expanduser().resolve() if args.output else src / "cellseg_masks"
    if out.exists() and not out.is_dir():
        raise CellsegError(f"--output {out} is a file; give a folder for the mask files")
    ds = datasets.discover(
        src,
        "omnipose",
        img_filter=args.img_filter,
        look_one_level_down=args.look_one_level_down,
        require_masks=False,
    )
    if not ds.samples:
        raise CellsegError(f"no images found in {src}")
    if out == src or out in {s.image.resolve().parent for s in ds.samples}:
        raise CellsegError(
            f"--output {out} is the folder of the input images: masks written there would look "
            "like annotations of a training set. Choose another folder (the default is "
            f"{src / 'cellseg_masks'})"
        )
    outputs = {s: _outputs(out, s.name.replace("/", "_"), args) for s in ds.samples}
    refuse_existing(
        [p for paths in outputs.values() for p in paths.values()],
        overwrite=args.overwrite,
        fix="pass --overwrite to replace them, or choose another --output",
    )
    written, failed = 0, []
    for sample in tqdm(ds.samples, unit="image", desc="predict", dynamic_ncols=True):
        try:
            _segment_one(seg, sample, outputs[sample], config, params)
        except CellsegError as err:
            if args.strict:
                raise CellsegError(f"{err} (stopped at the first failure: --strict)") from err
            failed.append(f"{sample.image}: {err}")
            continue
        written += 1
    print(f"wrote {written} mask file(s) to {out}")
    if failed:
        listed = "\n".join(f"  {line}" for line in failed)
        print(
            f"cellseg predict: {len(failed)} of {len(ds.samples)} image(s) failed and have no "
            f"masks:\n{listed}",
            file=sys.stderr,
        )
        return 1
    return 0


def _outputs(out: Path, base: str, args: argparse.Namespace) -> dict[str, Path]:
    """The files written for one image: masks, and flows / outlines when asked for."""
    paths = {"masks": out / f"{base}_masks.tif"}
    if args.save_flows:
        paths["flows"] = out / f"{base}_flows.tif"
    if args.save_png:
        paths["outlines"] = out / f"{base}_outlines.png"
    return paths


def _segment_one(
    seg: Segmenter, sample: Sample, paths: dict[str, Path], config: PredictConfig, params: Any
) -> None:
    """Segment one image and write its files (the output folder is made at the first)."""
    from napari_cellseg.io import datasets
    from napari_cellseg.io.images import write_mask
    from napari_cellseg.predict import predict_frames, results

    raw = datasets.load_image(sample)
    frames = seg.prepare(raw, channel_axis=config.channel_axis, source=str(sample.image))
    done = results(predict_frames(seg, frames, params, keep_outputs="flows" in paths))
    labels = done[0].labels if len(done) == 1 else np.stack([r.labels for r in done])
    paths["masks"].parent.mkdir(parents=True, exist_ok=True)
    write_mask(paths["masks"], labels)
    if "flows" in paths:
        _write_flows(paths["flows"], done)
    if "outlines" in paths:
        from napari_cellseg.overlay import save_outline_png

        save_outline_png(paths["outlines"], frames[0], done[0].labels)


def _write_flows(path: Path, results) -> None:
    from napari_cellseg.io.images import write_image

    stacks = []
    for r in results:
        maps = []
        for arr in r.outputs.values():
            maps.extend(arr if arr.ndim == 3 else [arr])
        stacks.append(np.stack(maps).astype(np.float32))
    write_image(path, stacks[0] if len(stacks) == 1 else np.stack(stacks))
