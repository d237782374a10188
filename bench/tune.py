"""Does the learning-rate range test pay for itself? Tuned vs default lr at an equal budget.

On ``bbbc039/train`` the range test (``cellseg tune lr --range_test``: training data only, so
the validation split is never selected on) suggests a rate; then two omni models train from
scratch with the same total budget of optimiser steps:

- default: our default learning rate for the whole budget;
- tuned: the suggested rate, for the budget minus the range test's own steps.

Both segment ``bbbc039/val``, scored by the same evaluator (mean per-image AP@0.5). The budget
is counted in steps (same crops, batch and network, so the same CPU work) rather than wall time,
which keeps the comparison fair on a shared, noisy machine; the seconds are printed too.

    python bench/tune.py                        # 2300 steps (about 30 min here) per model
    python bench/tune.py --budget_steps 400     # about 9 min per model
    python bench/tune.py --quick                # smoke test: 3 images, 30 steps
    python bench/tune.py --range_only --range_repeats 3   # the range test's time alone

Targets (issue 13): tuned AP@0.5 >= default AP@0.5; the range test < 5 % of the budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bbbc039_pairs, link_folder, median, result  # noqa: E402


def train_and_score(config, items, val_dir: Path, steps: int) -> tuple[float, float, int]:
    """Train ``config`` for about ``steps`` steps; (AP@0.5 on ``val_dir``, seconds, steps)."""
    from napari_cellseg.metrics import summarize
    from napari_cellseg.predict import Segmenter, score_dataset
    from napari_cellseg.train import crops_per_epoch, train_until
    from napari_cellseg.train.samples import discover_folders

    per_epoch = -(-crops_per_epoch(config, len(items)) // config.batch_size)
    epochs = max(1, round(steps / per_epoch))
    t0 = time.perf_counter()
    done = train_until(dataclasses.replace(config, n_epochs=epochs), None, items)
    seconds = time.perf_counter() - t0
    seg = Segmenter.from_file(done.model_path)
    rows = []
    for ds in discover_folders(str(val_dir), config):
        rows += score_dataset(seg, ds)
    return float(summarize(rows)["ap_50"]), seconds, epochs * per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget_steps", type=int, default=2300)
    parser.add_argument("--range_steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="3 images, 30-step budget")
    parser.add_argument(
        "--range_repeats", type=int, default=1, help="time the range test this many times (median)"
    )
    parser.add_argument(
        "--range_only", action="store_true", help="time the range test only (no training)"
    )
    args = parser.parse_args()

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.train.samples import load_items
    from napari_cellseg.tune import run_range_test

    train_pairs, val_pairs = bbbc039_pairs("train"), bbbc039_pairs("val")
    budget, range_steps = args.budget_steps, args.range_steps
    if args.quick:
        train_pairs, val_pairs, budget, range_steps = train_pairs[:3], val_pairs[:3], 30, 10
    with tempfile.TemporaryDirectory(prefix="cellseg_bench_tune_") as tmp:
        root = Path(tmp)
        train_dir = link_folder([f for pair in train_pairs for f in pair], root / "train")
        val_dir = link_folder([f for pair in val_pairs for f in pair], root / "val")
        base = TrainConfig(dir=str(train_dir), seed=args.seed, dataloader=True, num_workers=1)
        items = load_items(str(train_dir), base)

        times = []
        for _ in range(max(1, args.range_repeats)):
            t0 = time.perf_counter()
            found = run_range_test(base, items, steps=range_steps)
            times.append(time.perf_counter() - t0)
            print(
                f"range test: {len(found.lrs)} steps in {times[-1]:.0f} s -> suggested lr "
                f"{found.suggested_lr:.3g} (loss lowest at {found.min_loss_lr:.3g}; default "
                f"{base.learning_rate:g})",
                flush=True,
            )
        range_s = median(times)
        if args.range_only:
            print(f"range test: median {range_s:.1f} s ({range_s / len(found.lrs):.2f} s/step)")
            return
        default_ap, default_s, default_steps = train_and_score(
            dataclasses.replace(base, model=str(root / "default.pt")), items, val_dir, budget
        )
        print(f"default lr: {default_steps} steps, {default_s:.0f} s, AP@0.5 {default_ap:.4f}")
        tuned_ap, tuned_s, tuned_steps = train_and_score(
            dataclasses.replace(
                base, model=str(root / "tuned.pt"), learning_rate=found.suggested_lr
            ),
            items,
            val_dir,
            budget - len(found.lrs),
        )
        print(
            f"tuned lr:   {tuned_steps} steps + {len(found.lrs)} range-test steps, "
            f"{tuned_s:.0f} s + {range_s:.0f} s, AP@0.5 {tuned_ap:.4f}"
        )
    share = range_s / (range_s + tuned_s)
    print(f"range test share of the tuned budget: {share:.1%} (target < 5 %)")
    if default_ap == 0:
        print("the default-lr model found nothing: give a larger --budget_steps for a ratio")
        return
    result(
        "tuned_lr_ap50", tuned_ap, default_ap, higher_is_better=True, unit="AP@0.5", target=">=1"
    )


if __name__ == "__main__":
    main()
