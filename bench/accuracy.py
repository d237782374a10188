"""Accuracy for the same training time: napari-cellseg vs Omnipose 1.1.4 and Cellpose 3.

Each tool trains a model from scratch on ``bbbc039/train`` for the same wall-clock budget
(``--minutes``, on this machine's CPU), segments ``bbbc039/val`` with its own command line, and
every set of masks is scored by the same evaluator (``cellseg evaluate``): AP at IoU 0.5 and
0.75, AP = TP/(TP+FP+FN), the mean over images.

    python bench/accuracy.py                      # 30 min each: ~1 h 45 min in all
    python bench/accuracy.py --minutes 30 --peers omnipose   # ~1 h 5 min
    python bench/accuracy.py --minutes 10 --peers cellpose3  # Omnipose needs > 10 min here
    python bench/accuracy.py --quick              # smoke test: 3 images, 1.5 min budgets

How each run is bounded (the budget counts from the start of the training process, data loading
included; the short timing runs that size the runs are not counted):

- ours: trained in this process with ``napari_cellseg.train.train_until`` (the deadline stop of
  ``cellseg demo``), with our defaults; a timing run of a few steps sizes ``--n_epochs`` so that
  the cosine schedule ends at the deadline, which stops the run if the estimate was short;
- Omnipose: its CLI with the paper's recipe (RAdam, constant rate 0.1), killed at the deadline;
  the model is the last per-epoch checkpoint (``--save_each``) written before it;
- Cellpose 3: its CLI with its defaults (SGD 0.2, warm-up, final halvings); it cannot stop on a
  clock, so a timing run of 6 short epochs sizes ``--n_epochs``.

Peers whose virtual environment is missing are reported as SKIPPED (see bench/_peers.py). With
every training image used, the models are kept in ``$CELLSEG_BENCH_CACHE`` (default
``~/.cache/napari-cellseg-bench``), where ``bench/inference_speed.py`` finds the Omnipose one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_CACHE, bbbc039_pairs, evaluate_folder, link_folder, run_measured  # noqa: E402
from _peers import (  # noqa: E402
    MASK_FILTER,
    PEERS,
    Peer,
    PeerFailed,
    Trained,
    cellpose_epochs_for,
    cellpose_predict_cmd,
    cellpose_train,
    omnipose_predict_cmd,
    omnipose_train,
)


def train_ours(
    train_dir: Path, seconds: float, out: Path, *, workers: int, seed: int, timing_steps: int = 8
) -> Trained:
    """Train our default omni model for ``seconds`` of wall-clock time.

    Parameters
    ----------
    train_dir : Path
        Folder of training pairs.
    seconds : float
        Budget, from the start of data loading to the saved model.
    out : Path
        Folder for the model (``ours.pt``) and the timing run's model.
    workers : int
        Data-loader processes (0: prepare crops in the training process).
    seed : int
        Random seed.
    timing_steps : int
        Steps of the timing run (at least 3: the first two include start-up costs).

    Returns
    -------
    Trained
        The model and how long it trained.
    """
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.train import Progress, crops_per_epoch, train_until
    from napari_cellseg.train.samples import load_items

    config = TrainConfig(
        dir=str(train_dir),
        model=str(out / "ours.pt"),
        dataloader=workers > 0,
        num_workers=max(workers, 1),
        seed=seed,
    )
    # Timing run (not counted): a few steps on the real crops.
    items = load_items(str(train_dir), config)
    timing = dataclasses.replace(
        config,
        n_epochs=1,
        nimg_per_epoch=timing_steps * config.batch_size,
        warmup_epochs=0,
        model=str(out / "timing.pt"),
    )
    elapsed: dict[int, float] = {}

    def note(event: Progress) -> bool:
        if event.kind == "step":
            elapsed[event.step] = event.elapsed_s
        return event.step >= timing_steps

    train_until(timing, None, items, on_event=note)
    per_step = (elapsed[timing_steps] - elapsed[2]) / (timing_steps - 2)
    del items

    start = time.monotonic()
    deadline = start + seconds
    items = load_items(str(train_dir), config)
    steps = math.ceil(crops_per_epoch(config, len(items)) / config.batch_size)
    n_epochs = max(1, math.floor((deadline - time.monotonic()) * 0.97 / (per_step * steps)))
    print(
        f"  ours: {per_step:.2f} s per step of {config.batch_size} crops in the timing run -> "
        f"{n_epochs} epochs of {steps} steps",
        flush=True,
    )
    result = train_until(dataclasses.replace(config, n_epochs=n_epochs), deadline, items)
    bound = "stopped at the deadline" if result.stopped else "epochs sized to the budget"
    return Trained(result.model_path, time.monotonic() - start, result.epochs_done, bound)


def predict_and_score(cmd: list[str], out: Path, gt: Path, pred_filter: str, log: Path) -> dict:
    """Run a segmentation command that writes masks into ``out``; score them.

    Raises
    ------
    PeerFailed
        When the command failed or wrote fewer masks than there are ground-truth files
        (``python -m omnipose`` exits with 0 after printing a traceback).
    """
    out.mkdir(parents=True, exist_ok=True)
    run = run_measured(cmd, log=log)
    n_gt = len(list(gt.glob("*_masks.tif")))
    n_pred = len(list(out.glob(f"*{pred_filter}.tif")))
    if run.returncode or n_pred < n_gt:
        raise PeerFailed(
            f"segmenting wrote {n_pred}/{n_gt} masks (status {run.returncode}); see {log}\n"
            f"{run.output[-2000:]}"
        )
    summary = evaluate_folder(out, gt, pred_filter)
    summary["predict_s"] = run.seconds
    return summary


def run_peer(
    peer: Peer,
    train_dir: Path,
    images: Path,
    gt: Path,
    seconds: float,
    work: Path,
    *,
    n_train: int,
    timing_crops: int = 16,
) -> tuple[Trained, dict]:
    """Train one peer for the budget, segment the validation images and score them."""
    log = work / f"{peer.key}_train.log"
    if peer.key == "omnipose":
        trained = omnipose_train(train_dir, seconds, log)
        predict = omnipose_predict_cmd
    else:
        n_epochs = cellpose_epochs_for(
            train_dir, seconds, n_train, work / "cellpose3_timing.log", crops=timing_crops
        )
        trained = cellpose_train(train_dir, n_epochs, seconds, log)
        predict = cellpose_predict_cmd
    out = work / f"pred_{peer.key}"
    summary = predict_and_score(
        predict(trained.model, images, out), out, gt, MASK_FILTER, work / f"{peer.key}_predict.log"
    )
    return trained, summary


def keep_models(models: dict[str, tuple[Path, int]], meta: dict) -> None:
    """Copy the trained models to the benchmark cache, with a json note of how they were made.

    Parameters
    ----------
    models : dict
        Tool key -> (model file, epochs trained).
    meta : dict
        What the notes share (budget, images, seed).
    """
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    names = {
        "ours": "ours_bbbc039.pt",
        "omnipose": "omnipose_bbbc039",
        "cellpose3": "cellpose3_bbbc039",
    }
    for key, (path, epochs) in models.items():
        target = BENCH_CACHE / names[key]
        shutil.copy2(path, target)
        note = json.dumps({**meta, "epochs": epochs}, indent=2)
        target.with_name(target.name + ".json").write_text(note)
    print(f"models kept in {BENCH_CACHE} for bench/inference_speed.py", flush=True)


def main() -> None:
    """Train, segment and score each tool; print the RESULT lines."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget per tool")
    ap.add_argument(
        "--peers",
        default="omnipose,cellpose3",
        help="comma-separated references to run ('' for none; default: %(default)s)",
    )
    ap.add_argument("--n_train", type=int, default=None, help="first N training images only")
    ap.add_argument("--n_val", type=int, default=None, help="first N validation images only")
    ap.add_argument("--workers", type=int, default=1, help="our data-loader processes")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path, default=None, help="keep models, masks and logs here")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test of the whole pipeline: 3 training and 2 validation images, 1.5 min "
        "budgets (about 10 min in all)",
    )
    args = ap.parse_args()
    if args.quick:
        args.n_train = args.n_train or 3
        args.n_val = args.n_val or 2
        args.minutes = min(args.minutes, 1.5)  # Omnipose's first epoch compiles (numba)
    peers = [PEERS[k.strip()] for k in args.peers.split(",") if k.strip()]

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="cellseg-accuracy-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train_pairs = bbbc039_pairs("train")[: args.n_train]
    val_pairs = bbbc039_pairs("val")[: args.n_val]
    train_dir = link_folder([f for pair in train_pairs for f in pair], work / "train")
    images = link_folder([img for img, _ in val_pairs], work / "val_images")
    gt = link_folder([mask for _, mask in val_pairs], work / "val_gt")
    seconds = args.minutes * 60
    print(
        f"{len(train_pairs)} bbbc039/train images, {len(val_pairs)} bbbc039/val images, "
        f"{args.minutes:g} min of training per tool; work folder {work}",
        flush=True,
    )

    rows: dict[str, tuple[Trained, dict]] = {}
    print("== napari-cellseg", flush=True)
    trained = train_ours(
        train_dir,
        seconds,
        work,
        workers=args.workers,
        seed=args.seed,
        timing_steps=3 if args.quick else 8,
    )
    cmd = [sys.executable, "-m", "napari_cellseg.cli", "predict", "--model", str(trained.model)]
    cmd += ["--dir", str(images), "--output", str(work / "pred_ours")]
    rows["ours"] = (
        trained,
        predict_and_score(cmd, work / "pred_ours", gt, "_masks", work / "ours_predict.log"),
    )
    for peer in peers:
        print(f"== {peer.label}", flush=True)
        if not peer.available:
            print(f"SKIPPED {peer.key}: {peer.skip_reason()}", flush=True)
            continue
        try:
            rows[peer.key] = run_peer(
                peer,
                train_dir,
                images,
                gt,
                seconds,
                work,
                n_train=len(train_pairs),
                timing_crops=8 if args.quick else 16,
            )
        except PeerFailed as err:
            print(f"FAILED {peer.key}: {err}", flush=True)

    print(f"\n{'tool':<12} {'train s':>8} {'epochs':>7} {'AP@0.5':>7} {'AP@0.75':>8}  bounded by")
    for key, (t, s) in rows.items():
        print(
            f"{key:<12} {t.seconds:>8.0f} {t.epochs:>7d} {s['ap_50']:>7.3f} {s['ap_75']:>8.3f}  "
            f"{t.note}"
        )
    ours = rows["ours"][1]
    for key in (p.key for p in peers):
        if key not in rows:
            continue
        ref = rows[key][1]
        for metric in ("ap_50", "ap_75"):
            diff = ours[metric] - ref[metric]
            print(f"{metric} ours - {key} = {diff:+.3f}")
            ratio = ours[metric] / ref[metric] if ref[metric] else float("inf")
            print(
                f"RESULT accuracy_{metric}_vs_{key} ours={ours[metric]:.4g} ref={ref[metric]:.4g} "
                f"ratio={ratio:.3g} unit=AP target=>=1",
                flush=True,
            )
    if args.n_train is None:
        meta = {"made_by": "bench/accuracy.py", "minutes": args.minutes, "seed": args.seed}
        meta["train_images"] = len(train_pairs)
        keep_models({k: (t.model, t.epochs) for k, (t, _) in rows.items()}, meta)


if __name__ == "__main__":
    main()
