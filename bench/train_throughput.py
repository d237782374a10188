"""Training throughput (crops/s) and peak memory: napari-cellseg vs Omnipose 1.1.4, same run.

Both train an omni model from scratch on the dense images of ``bbbc039/train`` (>= 100 nuclei,
as Omnipose needs) with 224x224 crops and batches of 8, on the CPU. Each repetition runs both
in fresh processes; the medians are reported.

    python bench/train_throughput.py            # 73 images, 3 repetitions
    python bench/train_throughput.py --quick    # 24 images, 1 repetition

Omnipose comes from ``../shared/peers/setup_omnipose.sh`` (venv at /tmp/omnipose-venv, or set
OMNIPOSE_VENV). ``--no-omnipose`` measures ours only, against the figure in the issue.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    OMNIPOSE_PY,
    dense_bbbc039,
    median,
    require,
    result,
    run_with_peak_rss,
)

OMNIPOSE_SCRIPT = Path(__file__).resolve().parent / "peers" / "omnipose_train.py"
ISSUE_OMNIPOSE_CROPS_PER_S = 0.75  # measured on this machine, issue 3
ISSUE_OMNIPOSE_RSS_GB = 11.4


def ours_worker(pairs: list[list[str]], epochs: int, nbase: str | None, workers: int) -> None:
    """Child process: train ours and print one JSON line of measurements."""
    import tifffile

    from napari_cellseg.cli.train import tune_allocator
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.train import train
    from napari_cellseg.train.samples import make_items

    tune_allocator()  # as `cellseg train` does
    out = tempfile.mkdtemp(prefix="cellseg-bench-")
    config = TrainConfig(
        architecture="omni",
        tyx=(224, 224),
        batch_size=8,
        n_epochs=epochs,
        nimg_per_epoch=len(pairs),
        learning_rate=2e-3,
        model=f"{out}/bench.pt",
        save_every=10_000,
        dataloader=workers > 0,
        num_workers=workers,
        nbase=tuple(int(v) for v in nbase.split(",")) if nbase else None,
    )
    items = make_items(
        [tifffile.imread(p[0]) for p in pairs], [tifffile.imread(p[1]) for p in pairs], config
    )
    start = time.perf_counter()
    epoch_ends: list[tuple[float, float, int]] = []  # (time, data wait, step)
    gen = train(config, items)
    try:
        while True:
            event = next(gen)
            if event.kind == "epoch":
                epoch_ends.append((time.perf_counter(), event.data_wait_s, event.step))
    except StopIteration:
        pass
    total = time.perf_counter() - start
    # Steady state: from the end of the first epoch (workers started, caches warm) to the end.
    (t1, w1, s1), (t2, w2, s2) = epoch_ends[0], epoch_ends[-1]
    steady = t2 - t1 if len(epoch_ends) > 1 else total
    crops_steady = (s2 - s1) * config.batch_size if len(epoch_ends) > 1 else len(pairs)
    print(
        "OURS "
        + json.dumps(
            {
                "crops_per_s": len(pairs) * epochs / total,
                "crops_per_s_steady": crops_steady / steady,
                "data_wait_share": (w2 - w1) / steady if len(epoch_ends) > 1 else w2 / total,
                "step_s": steady / max(s2 - s1, 1),
            }
        ),
        flush=True,
    )


def _parse_line(text: str, prefix: str) -> str:
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise RuntimeError(f"no {prefix!r} line in the output:\n{text[-3000:]}")


def main() -> None:
    """Run the comparison and print the RESULT lines."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="24 images, 1 repetition")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--n_images", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=3, help="our epochs per run")
    ap.add_argument("--nbase", default=None, help="our widths, e.g. 32,64,128,256 (Omnipose's)")
    ap.add_argument("--workers", type=int, default=1, help="our data-loader processes")
    ap.add_argument("--no-omnipose", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pairs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        ours_worker(json.loads(Path(args.pairs).read_text()), args.epochs, args.nbase, args.workers)
        return
    repeats = args.repeats or (1 if args.quick else 3)
    pairs = dense_bbbc039("train")
    pairs = pairs[: args.n_images or (24 if args.quick else len(pairs))]
    pairs_file = Path(tempfile.mkdtemp()) / "pairs.json"
    pairs_file.write_text(json.dumps([[str(a), str(b)] for a, b in pairs]))
    print(f"{len(pairs)} dense bbbc039/train images, crops 224x224, batch 8, {repeats} repeat(s)")
    ours, ref = [], []
    for r in range(repeats):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--pairs",
            str(pairs_file),
            "--epochs",
            str(args.epochs),
            "--workers",
            str(args.workers),
        ]
        if args.nbase:
            cmd += ["--nbase", args.nbase]
        done, peak = run_with_peak_rss(cmd)
        if done.returncode:
            sys.exit(f"our run failed:\n{done.stdout[-3000:]}")
        m = json.loads(_parse_line(done.stdout, "OURS"))
        m["peak_rss_gb"] = peak
        ours.append(m)
        print(
            f"  run {r + 1} ours: {m['crops_per_s']:.2f} crops/s overall, "
            f"{m['crops_per_s_steady']:.2f} steady, {m['step_s']:.2f} s/step, data wait "
            f"{100 * m['data_wait_share']:.1f}% of the time, peak RSS {peak:.2f} GB",
            flush=True,
        )
        if not args.no_omnipose:
            require(OMNIPOSE_PY, "run ../shared/peers/setup_omnipose.sh first")
            out = tempfile.mkdtemp(prefix="omnipose-bench-")
            done, peak = run_with_peak_rss(
                [str(OMNIPOSE_PY), str(OMNIPOSE_SCRIPT), pairs_file.read_text(), "1", out]
            )
            if done.returncode:
                sys.exit(f"Omnipose run failed:\n{done.stdout[-3000:]}")
            fields = dict(
                kv.split("=") for kv in _parse_line(done.stdout, "OMNIPOSE_TRAIN").split()
            )
            m = {
                "crops_per_s": float(fields["crops"]) / float(fields["seconds"]),
                "peak_rss_gb": peak,
            }
            ref.append(m)
            print(
                f"  run {r + 1} Omnipose: {m['crops_per_s']:.2f} crops/s, peak RSS {peak:.2f} GB",
                flush=True,
            )
    ours_cps = median([m["crops_per_s"] for m in ours])  # whole run, like Omnipose's figure
    ours_rss = median([m["peak_rss_gb"] for m in ours])
    if ref:
        ref_cps = median([m["crops_per_s"] for m in ref])
        ref_rss = median([m["peak_rss_gb"] for m in ref])
    else:
        print("(Omnipose not run: its figures are the issue's measurements on this machine)")
        ref_cps, ref_rss = ISSUE_OMNIPOSE_CROPS_PER_S, ISSUE_OMNIPOSE_RSS_GB
    result(
        "train_crops_per_s", ours_cps, ref_cps, higher_is_better=True, unit="crops/s", target=">=3"
    )
    result("train_peak_rss", ours_rss, ref_rss, higher_is_better=False, unit="GB", target=">=3")
    wait = median([m["data_wait_share"] for m in ours])
    print(
        f"RESULT train_data_wait_share ours={wait:.3f} ref=0.10 ratio={0.10 / max(wait, 1e-9):.3g}"
        " unit=fraction target=<0.10",
        flush=True,
    )


if __name__ == "__main__":
    main()
