"""Inference speed (MPix/s, mask reconstruction included) and peak memory vs Omnipose 1.1.4.

Both command lines segment the same ``bbbc039/val`` images (520x696, 50 by default) on the CPU
and write one mask file per image; each run is a fresh process, timed from its start to its
exit (imports, model loading, reading and writing included, as a user waits for it), and its
peak resident memory is measured. Each repetition runs both; medians are reported.

    python bench/inference_speed.py                       # 50 images, 3 repetitions
    python bench/inference_speed.py --quick               # 3 images, 1 repetition
    python bench/inference_speed.py --model my.pt --peer_model /path/to/omnipose_model

Our model: ``--model`` (default: the built-in ``nuclei``; without it, the model that
``bench/accuracy.py`` kept in the cache). Omnipose's: ``--peer_model`` (a model trained with
``--nchan 1 --nclasses 2``), else the one ``bench/accuracy.py`` trained for its budget on
``bbbc039/train`` (kept in ``$CELLSEG_BENCH_CACHE``, default ``~/.cache/napari-cellseg-bench``),
else one trained here for ``--peer_train_minutes`` with the same recipe. Omnipose ships no
nuclei model for its own pipeline and its pretrained models are downloaded on first use, which
this machine cannot do. Reconstruction time depends on what the network predicts, so a barely
trained model can make Omnipose look faster or slower than it is: prefer the accuracy
benchmark's model (the mean objects per image are printed to check it finds the nuclei).

``--skip_peer`` measures ours only, against the issue's figures for Omnipose on this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_CACHE,
    bbbc039_pairs,
    link_folder,
    median,
    pixel_count,
    result,
    run_measured,
)
from _peers import MASK_FILTER, OMNIPOSE, PeerFailed, omnipose_predict_cmd, omnipose_train  # noqa: E402

# Measured by the issue on this machine: Omnipose's CLI, 50 BBBC039 images (18.1 MPix) in 108 s.
ISSUE_OMNIPOSE_MPIX_S = 18.1 / 108
ISSUE_OMNIPOSE_RSS_GB = 1.95
#: Where bench/accuracy.py keeps the Omnipose model it trained on bbbc039/train.
PEER_CACHE = BENCH_CACHE / "omnipose_bbbc039"


def ours_model(name: str) -> Path:
    """Our model file: ``name`` (a file or built-in name), else the accuracy benchmark's."""
    from napari_cellseg.errors import CellsegError
    from napari_cellseg.models.builtin import resolve_model

    try:
        return resolve_model(name)
    except CellsegError as err:
        cached = BENCH_CACHE / "ours_bbbc039.pt"
        if name == "nuclei" and cached.exists():
            print(f"(no built-in nuclei model installed; using {cached})")
            return cached
        sys.exit(f"{err}\n(or run bench/accuracy.py first, which keeps its model in the cache)")


def peer_model(given: Path | None, train_minutes: float, work: Path) -> Path:
    """Omnipose's model: the given one, the cached one, or one trained now (then cached)."""
    if given is not None:
        return given.resolve()
    cached = PEER_CACHE
    meta_file = cached.with_name(cached.name + ".json")
    if cached.exists():
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        print(f"Omnipose model: {cached} {meta}")
        return cached
    print(
        f"no cached Omnipose model: training one for {train_minutes:g} min on bbbc039/train "
        "as bench/accuracy.py does",
        flush=True,
    )
    files = [f for pair in bbbc039_pairs("train") for f in pair]
    trained = omnipose_train(
        link_folder(files, work / "train"), train_minutes * 60, work / "omnipose_train.log"
    )
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    shutil.copy2(trained.model, cached)
    meta = {
        "made_by": "bench/inference_speed.py",
        "minutes": train_minutes,
        "epochs": trained.epochs,
        "train_images": len(files) // 2,
    }
    meta_file.write_text(json.dumps(meta))
    print(f"Omnipose model: {cached} {meta}")
    return cached


def objects_per_image(folder: Path, suffix: str) -> float:
    """Mean number of objects in the label files ``*<suffix>.tif`` of a folder."""
    import numpy as np
    import tifffile

    counts = [len(np.unique(tifffile.imread(p))) - 1 for p in folder.glob(f"*{suffix}.tif")]
    return float(np.mean(counts)) if counts else 0.0


def timed_run(cmd: list[str], out: Path, suffix: str, n_images: int, label: str) -> dict:
    """Run one segmentation command into ``out``; check that it wrote every mask.

    Returns
    -------
    dict
        ``seconds`` and ``peak_rss_gb``.
    """
    out.mkdir(parents=True, exist_ok=True)
    run = run_measured(cmd)
    written = len(list(out.glob(f"*{suffix}.tif")))
    if run.returncode or written != n_images:
        # python -m omnipose prints a traceback and exits with 0: count the files
        sys.exit(
            f"{label} failed (status {run.returncode}, {written}/{n_images} masks):\n"
            f"{run.output[-3000:]}"
        )
    return {"seconds": run.seconds, "peak_rss_gb": run.peak_rss_gb}


def main() -> None:
    """Run the comparison and print the RESULT lines."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n_images", type=int, default=None, help="first N val images (all: 50)")
    ap.add_argument("--repeats", type=int, default=None, help="repetitions (default 3)")
    ap.add_argument("--quick", action="store_true", help="3 images, 1 repetition")
    ap.add_argument("--model", default="nuclei", help="our model: file or built-in name")
    ap.add_argument("--diameter", type=float, default=0.0, help="our --diameter (0: none)")
    ap.add_argument("--peer_model", type=Path, default=None, help="Omnipose model file")
    ap.add_argument(
        "--peer_train_minutes",
        type=float,
        default=30.0,
        help="budget to train an Omnipose model when none is given or cached (default: "
        "%(default)s, as bench/accuracy.py; less gives a model whose poor output distorts "
        "the reconstruction time)",
    )
    ap.add_argument("--skip_peer", action="store_true", help="measure ours only")
    ap.add_argument("--no_warmup", action="store_true", help="skip the untimed 1-image runs")
    args = ap.parse_args()
    n_images = args.n_images or (3 if args.quick else 50)
    repeats = args.repeats or (1 if args.quick else 3)

    work = Path(tempfile.mkdtemp(prefix="cellseg-inference-"))
    images = [img for img, _ in bbbc039_pairs("val")][:n_images]
    folder = link_folder(images, work / "images")
    warm = link_folder(images[:1], work / "warmup")
    mpix = pixel_count(images) / 1e6
    model = ours_model(args.model)
    skip = args.skip_peer
    if not skip and not OMNIPOSE.available:
        print(f"SKIPPED omnipose: {OMNIPOSE.skip_reason()}")
        skip = True
    omni_model = None
    if not skip:
        try:
            omni_model = peer_model(args.peer_model, args.peer_train_minutes, work)
        except PeerFailed as err:
            sys.exit(f"no Omnipose model: {err}")

    def ours_cmd(src: Path, out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "napari_cellseg.cli", "predict", "--model", str(model)]
        return cmd + ["--dir", str(src), "--output", str(out), "--diameter", str(args.diameter)]

    print(
        f"{len(images)} bbbc039/val images, {mpix:.2f} MPix; ours: {model}; "
        f"Omnipose: {omni_model or 'not run'}; {repeats} repetition(s)",
        flush=True,
    )
    if not args.no_warmup:  # page cache, .pyc and numba caches: not what is measured
        timed_run(ours_cmd(warm, work / "w_ours"), work / "w_ours", "_masks", 1, "ours (warm-up)")
        if omni_model:
            cmd = omnipose_predict_cmd(omni_model, warm, work / "w_omni")
            timed_run(cmd, work / "w_omni", MASK_FILTER, 1, "Omnipose (warm-up)")
    ours, ref = [], []
    for r in range(repeats):
        out = work / f"ours_{r}"
        m = timed_run(ours_cmd(folder, out), out, "_masks", len(images), "ours")
        ours.append(m)
        print(
            f"  run {r + 1} ours: {m['seconds']:.1f} s = {mpix / m['seconds']:.3f} MPix/s, "
            f"peak RSS {m['peak_rss_gb']:.2f} GB, {objects_per_image(out, '_masks'):.0f} "
            "objects/image",
            flush=True,
        )
        if omni_model:
            out = work / f"omnipose_{r}"
            cmd = omnipose_predict_cmd(omni_model, folder, out)
            m = timed_run(cmd, out, MASK_FILTER, len(images), "Omnipose")
            ref.append(m)
            print(
                f"  run {r + 1} Omnipose: {m['seconds']:.1f} s = {mpix / m['seconds']:.3f} "
                f"MPix/s, peak RSS {m['peak_rss_gb']:.2f} GB, "
                f"{objects_per_image(out, MASK_FILTER):.0f} objects/image",
                flush=True,
            )
    ours_speed = mpix / median([m["seconds"] for m in ours])
    ours_rss = median([m["peak_rss_gb"] for m in ours])
    if ref:
        ref_speed = mpix / median([m["seconds"] for m in ref])
        ref_rss = median([m["peak_rss_gb"] for m in ref])
    else:
        print("(Omnipose not run: its figures are the issue's measurements on this machine)")
        ref_speed, ref_rss = ISSUE_OMNIPOSE_MPIX_S, ISSUE_OMNIPOSE_RSS_GB
    result(
        "inference_mpix_per_s",
        ours_speed,
        ref_speed,
        higher_is_better=True,
        unit="MPix/s",
        target=">=3",
    )
    result(
        "inference_peak_rss", ours_rss, ref_rss, higher_is_better=False, unit="GB", target="report"
    )
    print(f"masks in {work}")


if __name__ == "__main__":
    main()
