"""Scale-out on this machine: Dask folder throughput, a huge Zarr image, DDP, data loading.

Four measurements, each a fresh ``cellseg`` process timed from start to exit (``--part``
picks them; all by default):

- ``folder``: a folder of ``--n_images`` images (the ``bbbc039/val`` images, in turn) segmented
  by ``cellseg predict --dask --dask_workers 1`` and ``--dask_workers 2``; images/s of each and
  the ratio 2 vs 1 workers. The plain single-process run is printed for reference.
- ``huge``: a ``--size`` x ``--size`` OME-Zarr mosaic of the ``bbbc039/val`` images (with its
  ground truth) segmented block by block with ``cellseg predict --image ... --dask``; its wall
  time, the peak resident memory of the largest single process (a worker or the client) and of
  the whole process tree, and AP@0.5 against the mosaic's truth. The reference is the single-
  process whole-image path (``cellseg predict --dir``) on a ``--whole_size`` mosaic, the largest
  this benchmark asks it to hold; the ratio compares MPix/s.
- ``ddp``: ``cellseg train`` on synthetic nuclei with one process vs ``--ddp 2`` gloo ranks at
  the same global batch; optimiser steps/s and the ratio. On two CPU cores the ranks share the
  cores, so expect <= 1x: the point of DDP here is correctness; the speedup is for GPUs.
- ``loader``: the same training with batches made in the training process vs
  ``--dataloader --num_workers 1`` and ``2``, and with ``--amp on`` (bf16 autocast on the CPU).

    python bench/scale.py                                  # all four, --size 8192
    python bench/scale.py --part huge --size 32768         # the issue's size (hours on 2 cores)
    python bench/scale.py --part folder --n_images 32 --repeats 3

Targets (issue 12): folder 2 vs 1 workers reported; huge-image peak RSS per process bounded
(independent of ``--size``: compare two sizes) and reported with the wall time; DDP reported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    bbbc039_pairs,
    evaluate_folder,
    link_folder,
    median,
    result,
    run_measured,
)
from large_image import write_mosaic  # noqa: E402

CLI = [sys.executable, "-m", "napari_cellseg.cli"]


def _run(label: str, cmd: list[str], **limits):
    """Run one command; exit with its output if it failed."""
    run = run_measured(cmd, **limits)
    if run.returncode or run.stopped:
        sys.exit(f"{label} failed (status {run.returncode}):\n{run.output[-3000:]}")
    return run


def folder(args: argparse.Namespace, work: Path) -> None:
    """Images/s of a folder with 1 and 2 Dask workers (and without Dask, for reference)."""
    pairs = bbbc039_pairs("val")
    images = link_folder([pairs[k % len(pairs)][0] for k in range(args.n_images)], work / "dir")
    base = [*CLI, "predict", "--model", args.model, "--dir", str(images)]
    rates: dict[str, list[float]] = {"plain": [], "1": [], "2": []}
    for rep in range(args.repeats):
        for key in rates:
            out = work / f"folder-{key}-{rep}"
            extra = [] if key == "plain" else ["--dask", "--dask_workers", key]
            run = _run(f"folder {key}", [*base, "--output", str(out), *extra])
            written = len(list(out.glob("*_masks.tif")))
            assert written == args.n_images, f"{out}: {written} masks"
            rates[key].append(args.n_images / run.seconds)
            print(f"  folder, {key:>5}: {run.seconds:.1f} s, peak RSS {run.peak_rss_gb:.2f} GB")
    print(f"  folder, no Dask (reference): median {median(rates['plain']):.3f} images/s")
    result(
        "scale_folder_images_per_s_2_vs_1_workers",
        median(rates["2"]),
        median(rates["1"]),
        higher_is_better=True,
        unit="images/s",
        target="report",
    )


def _write_zarr_mosaic(size: int, work: Path) -> tuple[Path, Path]:
    """The ``size`` mosaic as an OME-Zarr (1024 chunks) and its truth as a TIFF folder."""
    import numpy as np
    import tifffile
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    scratch, truth = work / f"mosaic-{size}", work / f"truth-{size}"
    scratch.mkdir()
    truth.mkdir()
    write_mosaic(size, scratch, truth)
    image = tifffile.imread(scratch / "mosaic.tif")
    dest = work / f"mosaic-{size}.ome.zarr"
    root = zarr.open_group(str(dest), mode="w")
    root.create_array("s0", data=np.asarray(image), chunks=(1024, 1024))
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    transforms = [[{"type": "scale", "scale": [1.0, 1.0]}]]
    write_multiscales_metadata(
        root, [{"path": "s0", "coordinateTransformations": transforms[0]}], axes=axes
    )
    (scratch / "mosaic.tif").unlink()
    return dest, truth


def huge(args: argparse.Namespace, work: Path) -> None:
    """A huge OME-Zarr block by block on Dask vs the whole-image path on a smaller mosaic."""
    import numpy as np
    import tifffile

    from napari_cellseg.io.images.chunked import read_label_zarr

    images, truth = work / "whole", work / "whole-truth"
    images.mkdir()
    truth.mkdir()
    write_mosaic(args.whole_size, images, truth)
    out = work / "whole-out"
    cmd = [*CLI, "predict", "--model", args.model, "--dir", str(images), "--output", str(out)]
    whole = _run("whole image", cmd)
    scores = evaluate_folder(out, truth, "_masks")
    whole_mpix = args.whole_size**2 / 1e6
    print(
        f"  whole image {args.whole_size}x{args.whole_size}: {whole.seconds:.0f} s, peak RSS "
        f"{whole.peak_rss_gb:.2f} GB, AP@0.5 {scores['ap_50']:.3f}"
    )

    zarr_path, truth = _write_zarr_mosaic(args.size, work)
    out = work / "huge-out"
    cmd = [*CLI, "predict", "--model", args.model, "--image", str(zarr_path)]
    cmd += ["--output", str(out), "--dask", "--dask_workers", str(args.workers)]
    blocks = _run("huge image", cmd)
    labels = read_label_zarr(out / f"{zarr_path.name.removesuffix('.ome.zarr')}_masks.ome.zarr")
    scored = work / "huge-scored"
    scored.mkdir()
    tifffile.imwrite(scored / "mosaic_masks.tif", labels.astype(np.uint32), compression="zlib")
    del labels
    scores = evaluate_folder(scored, truth, "_masks")
    mpix = args.size**2 / 1e6
    print(
        f"  huge image {args.size}x{args.size} on {args.workers} Dask worker(s): "
        f"{blocks.seconds:.0f} s, peak RSS of one process {blocks.peak_process_gb:.2f} GB "
        f"(all processes {blocks.peak_rss_gb:.2f} GB), AP@0.5 {scores['ap_50']:.3f}"
    )
    print(f"RESULT scale_huge_peak_rss_per_process ours={blocks.peak_process_gb:.4g} unit=GB")
    result(
        "scale_huge_mpix_per_s_vs_whole_image",
        mpix / blocks.seconds,
        whole_mpix / whole.seconds,
        higher_is_better=True,
        unit="MPix/s",
        target="report",
    )


def _train_rates(args: argparse.Namespace, work: Path, settings: dict[str, list[str]]) -> dict:
    """Optimiser steps/s of ``cellseg train`` under each setting (median of ``--repeats``).

    Every setting trains the same 32 synthetic 256x256 nuclei images, 128x128 crops, for
    ``--ddp_epochs`` epochs of 4 steps at a global batch of 8; its extra flags come last.
    """
    from napari_cellseg import synth

    data = work / "train"
    if not data.exists():
        synth.make_dataset(data, kind="nuclei", n=32, shape=(256, 256), seed=0)
    steps = args.ddp_epochs * 4
    common = ["--dir", str(data), "--n_epochs", str(args.ddp_epochs), "--tyx", "128,128"]
    rates: dict[str, list[float]] = {key: [] for key in settings}
    for rep in range(args.repeats):
        for n, (key, extra) in enumerate(settings.items()):
            model = work / f"train-{key.replace(' ', '')}-{n}-{rep}.pt"
            run = _run(key, [*CLI, "train", *common, "--model", str(model), *extra])
            rates[key].append(steps / run.seconds)
            print(f"  train, {key}: {steps} steps in {run.seconds:.1f} s", flush=True)
    return {key: median(values) for key, values in rates.items()}


def ddp(args: argparse.Namespace, work: Path) -> None:
    """One process vs two gloo ranks at the same global batch."""
    rates = _train_rates(
        args,
        work,
        {"1 rank": ["--batch_size", "8"], "2 ranks": ["--batch_size", "4", "--ddp", "2"]},
    )
    result(
        "scale_ddp_steps_per_s_2_vs_1_ranks",
        rates["2 ranks"],
        rates["1 rank"],
        higher_is_better=True,
        unit="steps/s",
        target="report (<=1 expected on 2 CPU cores)",
    )


def loader(args: argparse.Namespace, work: Path) -> None:
    """Batches made in the training process vs in 1 or 2 DataLoader workers; bf16 on the CPU."""
    batch = ["--batch_size", "8"]
    settings = {  # result name: flags
        "dataloader_1_worker": [*batch, "--dataloader", "--num_workers", "1"],
        "dataloader_2_workers": [*batch, "--dataloader", "--num_workers", "2"],
        "amp_bf16_cpu": [*batch, "--amp", "on"],
    }
    rates = _train_rates(args, work, {"in_process": batch, **settings})
    for name in settings:
        result(
            f"scale_train_steps_per_s_{name}_vs_in_process",
            rates[name],
            rates["in_process"],
            higher_is_better=True,
            unit="steps/s",
            target="report",
        )


def main() -> None:
    """Run the chosen parts and print their RESULT lines."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=["folder", "huge", "ddp", "loader", "all"], default="all")
    ap.add_argument("--model", default="nuclei", help="file or built-in name")
    ap.add_argument("--n_images", type=int, default=16, help="images in the folder")
    ap.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    ap.add_argument("--size", type=int, default=8192, help="huge mosaic edge in pixels")
    ap.add_argument("--whole_size", type=int, default=4096, help="whole-image reference edge")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers for the huge image")
    ap.add_argument("--ddp_epochs", type=int, default=8, help="epochs of 32 crops")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cellseg-scale-"))
    print(f"working in {work}")
    for name, part in {"folder": folder, "huge": huge, "ddp": ddp, "loader": loader}.items():
        if args.part in (name, "all"):
            part(args, work)


if __name__ == "__main__":
    main()
