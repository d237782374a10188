"""One large image: time, peak memory and accuracy of ``cellseg predict`` vs Omnipose 1.1.4.

The image is a mosaic of the ``bbbc039/val`` images (520x696, used in turn) filling
``--size`` x ``--size`` pixels (default 8192: 67 MPix, about 22,000 nuclei), with the mosaic
of their masks as ground truth. Each command line segments it in a fresh process, timed from
its start to its exit; its peak resident memory is measured, and a run that goes over
``--peer_max_gb`` or ``--peer_timeout`` is stopped and reported as such (Omnipose keeps whole-
image arrays, so without the cap a large image can exhaust the machine). Both results are
scored against the mosaic's ground truth with ``cellseg evaluate``.

    python bench/large_image.py                     # 8192x8192, ours and Omnipose
    python bench/large_image.py --size 2048 --skip_peer

Our model: ``--model`` (default: the built-in ``nuclei``). Omnipose's: as in
``bench/inference_speed.py`` (``--peer_model``, else the model ``bench/accuracy.py`` cached).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bbbc039_pairs, evaluate_folder, result, run_measured  # noqa: E402
from _peers import MASK_FILTER, OMNIPOSE, omnipose_predict_cmd  # noqa: E402
from inference_speed import PEER_CACHE, ours_model  # noqa: E402


def write_mosaic(size: int, images: Path, truth: Path) -> int:
    """Write ``mosaic.tif`` (into ``images``) and its ``mosaic_masks.tif`` (into ``truth``).

    Returns
    -------
    int
        The number of ground-truth nuclei.
    """
    import numpy as np
    import tifffile

    pairs = bbbc039_pairs("val")
    image = np.zeros((size, size), dtype=np.uint16)
    masks = np.zeros((size, size), dtype=np.uint32)
    count, k = 0, 0
    h, w = tifffile.imread(pairs[0][0]).shape
    for y in range(0, size, h):
        for x in range(0, size, w):
            img_path, mask_path = pairs[k % len(pairs)]
            k += 1
            img, mask = tifffile.imread(img_path), tifffile.imread(mask_path).astype(np.uint32)
            sub = (slice(y, min(y + h, size)), slice(x, min(x + w, size)))
            hh, ww = sub[0].stop - y, sub[1].stop - x
            image[sub] = img[:hh, :ww]
            ids, inverse = np.unique(mask[:hh, :ww], return_inverse=True)
            new = np.where(ids > 0, count + np.cumsum(ids > 0), 0).astype(np.uint32)
            masks[sub] = new[inverse.reshape(hh, ww)]
            count += int((ids > 0).sum())
    tifffile.imwrite(images / "mosaic.tif", image)
    tifffile.imwrite(truth / "mosaic_masks.tif", masks, compression="zlib")
    return count


def measure(label: str, cmd: list[str], out: Path, truth: Path, suffix: str, **limits) -> dict:
    """Run one command, check its mask file and score it; print one line."""
    run = run_measured(cmd, **limits)
    mask = out / f"mosaic{suffix}.tif"
    if run.stopped or run.returncode or not mask.exists():
        why = "stopped at the limit" if run.stopped else f"status {run.returncode}"
        print(
            f"  {label}: no masks ({why}) after {run.seconds:.0f} s, peak RSS "
            f"{run.peak_rss_gb:.2f} GB\n{run.output[-2000:]}",
            flush=True,
        )
        return {"seconds": run.seconds, "peak_rss_gb": run.peak_rss_gb, "ok": False}
    scores = evaluate_folder(out, truth, suffix)
    print(
        f"  {label}: {run.seconds:.0f} s, peak RSS {run.peak_rss_gb:.2f} GB, "
        f"{scores['n_pred']} objects, AP@0.5 {scores['ap_50']:.3f}, AP@0.75 {scores['ap_75']:.3f}",
        flush=True,
    )
    return {"seconds": run.seconds, "peak_rss_gb": run.peak_rss_gb, "ok": True}


def main() -> None:
    """Build the mosaic, run both tools, print the RESULT lines."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=8192, help="mosaic edge in pixels")
    ap.add_argument("--model", default="nuclei", help="our model: file or built-in name")
    ap.add_argument("--peer_model", type=Path, default=None, help="Omnipose model file")
    ap.add_argument("--skip_peer", action="store_true", help="measure ours only")
    ap.add_argument(
        "--peer_max_gb", type=float, default=16.0, help="stop Omnipose above this RSS (GB)"
    )
    ap.add_argument(
        "--peer_timeout", type=float, default=40.0, help="stop Omnipose after this (minutes)"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cellseg-large-"))
    images, truth = work / "images", work / "truth"
    images.mkdir()
    truth.mkdir()
    n_truth = write_mosaic(args.size, images, truth)
    mpix = args.size**2 / 1e6
    print(f"mosaic of bbbc039/val: {args.size}x{args.size} ({mpix:.1f} MPix), {n_truth} nuclei")

    model = ours_model(args.model)
    out = work / "ours"
    cmd = [sys.executable, "-m", "napari_cellseg.cli", "predict", "--model", str(model)]
    ours = measure("ours", cmd + ["--dir", str(images), "--output", str(out)], out, truth, "_masks")
    if not ours["ok"]:
        sys.exit("our run failed")

    peer_model = args.peer_model or PEER_CACHE
    if args.skip_peer:
        ref = None
    elif not OMNIPOSE.available:
        print(f"SKIPPED omnipose: {OMNIPOSE.skip_reason()}")
        ref = None
    elif not peer_model.exists():
        print(f"SKIPPED omnipose: no model {peer_model} (run bench/accuracy.py, or --peer_model)")
        ref = None
    else:
        out = work / "omnipose"
        ref = measure(
            "Omnipose",
            omnipose_predict_cmd(peer_model.resolve(), images, out),
            out,
            truth,
            MASK_FILTER,
            timeout=args.peer_timeout * 60,
            max_rss_gb=args.peer_max_gb,
        )
    if ref is None:
        print(f"RESULT large_image_peak_rss ours={ours['peak_rss_gb']:.4g} unit=GB target=<=4")
        return
    if not ref["ok"]:
        print("(Omnipose was stopped at a limit: it needs at least that time and memory, so the")
        print(" ratios below are lower bounds)")
    result(
        "large_image_mpix_per_s",
        mpix / ours["seconds"],
        mpix / ref["seconds"],
        higher_is_better=True,
        unit="MPix/s",
        target="report",
    )
    result(
        "large_image_peak_rss",
        ours["peak_rss_gb"],
        ref["peak_rss_gb"],
        higher_is_better=False,
        unit="GB",
        target="ours<=4",
    )
    print(f"files in {work}")


if __name__ == "__main__":
    main()
