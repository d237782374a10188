"""``cellseg predict``: segment a folder of images into ``<base>_masks.tif`` files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        "only with --overwrite, or kept with --resume (a killed run goes on where it stopped). "
        "An image that cannot be read or segmented is reported at the end (exit status 1) and "
        "the others are still written. --image segments one huge image (OME-Zarr, Zarr or "
        "TIFF, read lazily) block by block into <base>_masks.ome.zarr; --dask runs either on a "
        "Dask cluster.",
    )
    p.add_argument(
        "--config",
        help="a yaml of the options below (under 'predict:' or at the top level; flags given "
        "here win), or, CLB style, the yaml written beside a model (= --model)",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dir", "--test_data", dest="dir", help="folder of images")
    source.add_argument(
        "--image",
        help="one huge image, read lazily and segmented block by block: an OME-Zarr / Zarr "
        "folder or a TIFF; writes <base>_masks.ome.zarr (an OME-Zarr label image, the input's "
        "chunking) into --output (default: cellseg_masks beside the image)",
    )
    p.add_argument(
        "--output", "--savedir", dest="output", help="output folder (default: <dir>/cellseg_masks)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that already exist (never an input file)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip the images whose output files all exist (files are written atomically, so "
        "an existing one is complete: a killed run restarted with --resume computes only "
        "what is missing); leftover temporaries of a killed run are removed",
    )
    p.add_argument(
        "--dask",
        nargs="?",
        const="local",
        metavar="SCHEDULER_ADDRESS",
        help="run on Dask: without an address on a local cluster (one single-threaded worker "
        "per core), or on the scheduler at SCHEDULER_ADDRESS (tcp://host:8786); each worker "
        "loads the model once and writes its images' files",
    )
    p.add_argument(
        "--dask_workers", type=int, default=None, help="workers of the local Dask cluster"
    )
    p.add_argument(
        "--dask_timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the Dask scheduler (default: 10)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=1024,
        help="--image: chunk edge of a TIFF's labels (a Zarr keeps its own; default 1024)",
    )
    p.add_argument(
        "--block",
        type=int,
        default=None,
        help="--image: edge of the blocks worked on, a multiple of the chunk (default 1024, "
        "which gives the whole image's labels exactly); memory per worker grows with it",
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
    from napari_cellseg.io import datasets
    from napari_cellseg.io.outputs import refuse_existing, remove_stale_temporaries
    from napari_cellseg.predict import Segmenter
    from napari_cellseg.predict.files import finished, output_paths

    config = options(args)
    if args.image:
        return _run_image(args, config)
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
    outputs = {
        s: output_paths(
            out, s.name.replace("/", "_"), save_flows=args.save_flows, save_png=args.save_png
        )
        for s in ds.samples
    }
    done = set(finished(outputs)) if args.resume else set()
    todo = {s: paths for s, paths in outputs.items() if s not in done}
    refuse_existing(
        [p for paths in todo.values() for p in paths.values()],
        overwrite=args.overwrite or args.resume,
        fix="pass --overwrite to replace them, --resume to keep them and segment only the "
        "images without, or choose another --output",
    )
    remove_stale_temporaries(p for paths in outputs.values() for p in paths.values())
    if done:
        print(f"skipped {len(done)} image(s) whose files exist (--resume)")
    if args.dask:
        failed = _run_dask(args, config, todo)
    else:
        failed = _run_here(args, seg, todo, config, params)
    print(f"wrote {len(todo) - len(failed)} mask file(s) to {out}")
    if failed:
        listed = "\n".join(f"  {line}" for line in failed)
        print(
            f"cellseg predict: {len(failed)} of {len(ds.samples)} image(s) failed and have no "
            f"masks:\n{listed}",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_here(
    args: argparse.Namespace,
    seg: Segmenter,
    todo: dict[Sample, dict[str, Path]],
    config: PredictConfig,
    params: Any,
) -> list[str]:
    """The images one after the other in this process; the failures."""
    from tqdm import tqdm

    from napari_cellseg.predict.files import segment_to_files

    failed = []
    for sample in tqdm(todo, unit="image", desc="predict", dynamic_ncols=True):
        try:
            segment_to_files(seg, sample, todo[sample], config, params)
        except CellsegError as err:
            if args.strict:
                raise CellsegError(f"{err} (stopped at the first failure: --strict)") from err
            failed.append(f"{sample.image}: {err}")
    return failed


def _run_dask(
    args: argparse.Namespace, config: PredictConfig, todo: dict[Sample, dict[str, Path]]
) -> list[str]:
    """The images on a Dask cluster, each worker writing its images' files; the failures."""
    from napari_cellseg.predict import dask as on_dask

    client = _client(args)
    try:
        failed = on_dask.predict_folder(client, todo, config)
    finally:
        on_dask.close(client)
    if failed and args.strict:
        raise CellsegError(f"{failed[0]} (--strict; {len(failed)} image(s) failed)")
    return failed


def _client(args: argparse.Namespace):
    from napari_cellseg.predict import dask as on_dask

    address = None if args.dask == "local" else args.dask
    client = on_dask.connect(address, workers=args.dask_workers, timeout=args.dask_timeout)
    print(on_dask.describe(client), flush=True)
    return client


def _run_image(args: argparse.Namespace, config: PredictConfig) -> int:
    """One huge image block by block into ``<base>_masks.ome.zarr``."""
    from napari_cellseg.io.images.chunked import open_chunked
    from napari_cellseg.io.outputs import remove_stale_temporaries
    from napari_cellseg.predict.blockwise import segment_chunked, serial_map

    image = open_chunked(args.image, chunk=args.chunk)
    parent = image.path.resolve().parent
    out = Path(args.output).expanduser().resolve() if args.output else parent / "cellseg_masks"
    if out.exists() and not out.is_dir():
        raise CellsegError(f"--output {out} is a file; give a folder for the label image")
    dest = out / f"{image.name}_masks.ome.zarr"
    if dest.exists() and args.resume:
        print(f"skipped {image.path}: {dest} exists (--resume)")
        return 0
    if dest.exists() and not args.overwrite:
        raise CellsegError(
            f"{dest} already exists and would be replaced; pass --overwrite to replace it, "
            "--resume to keep it, or choose another --output. Nothing was written"
        )
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries([dest, dest.with_name(dest.name + ".work")])
    client = _client(args) if args.dask else None
    try:
        mapper = serial_map
        if client is not None:
            from napari_cellseg.predict.dask import client_mapper

            mapper = client_mapper(client)
        segment_chunked(
            image.path,
            dest,
            config,
            chunk=args.chunk,
            block=args.block,
            mapper=mapper,
            replace=args.overwrite,
        )
    finally:
        if client is not None:
            from napari_cellseg.predict.dask import close

            close(client)
    print(f"wrote {dest}")
    return 0
