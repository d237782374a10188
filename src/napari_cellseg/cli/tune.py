"""``cellseg tune lr|batch``: CLB's hypertune done right, on Optuna, and the lr range test."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from napari_cellseg.config import TrainConfig, add_config_arguments, config_from_args
from napari_cellseg.errors import CellsegError

EPILOG = """examples:
  fast first answer (one short run, loss vs lr):
    cellseg tune lr --range_test --train_data T --val_data V --out tune/
  CLB's staged search (20 x 5 epochs, 10 x 25, 5 x 50), resumable:
    cellseg tune lr --architecture dcan --batch 6 --train_data T --val_data V \\
        --storage sqlite:///tune.db --study_name dcan-lr
  batch sizes 2..32 at a fixed lr:
    cellseg tune batch --architecture unet --epochs 5 --train_data T --val_data V
then: cellseg train --args_load_path tune/tuned_lr.yaml --model final.pt ...
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg tune`` with its ``lr`` and ``batch`` searches."""
    parser = subparsers.add_parser(
        "tune",
        help="find the learning rate or batch size (range test, Optuna studies)",
        description="Tune training options on validation data. Every `cellseg train` option "
        "is accepted (CLB's and Omnipose's flags unchanged) and applies to every trial. "
        "Writes tuned_<lr|batch>.yaml for --args_load_path, a PNG plot and, for lr, CLB's "
        "best_final_pow.txt into --out; keeps only the best trial's model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    searches = parser.add_subparsers(dest="search", metavar="SEARCH")
    lr = searches.add_parser(
        "lr",
        help="learning rate: range test, or CLB's staged search",
        description="Search the learning rate. --range_test: one short run with the rate "
        "rising exponentially (training data only); otherwise CLB's coarse-to-fine random "
        "search of log10(lr) as Optuna trials with median pruning (--epochs is set per stage).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch = searches.add_parser(
        "batch",
        help="batch size: powers of two up to what memory allows",
        description="Train --epochs epochs at each batch size (2, 4, ... 32) and keep the one "
        "with the lowest validation loss; an out-of-memory size ends the search upward.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for p in (lr, batch):
        add_config_arguments(p)
        t = p.add_argument_group("tuning")
        t.add_argument("--out", default="cellseg_tune", help="folder for the yaml, plot and db")
        t.add_argument("--storage", help="Optuna storage URL (default sqlite:///<out>/tune.db)")
        t.add_argument("--study_name", help="study name; an existing study resumes")
        t.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the tuned yaml and plot of an earlier range test in --out",
        )
    r = lr.add_argument_group("range test")
    r.add_argument("--range_test", action="store_true", help="run the fast range test only")
    r.add_argument("--min_lr", type=float, default=1e-6, help="lowest rate tried (1e-6)")
    r.add_argument("--max_lr", type=float, default=1.0, help="highest rate tried (1)")
    r.add_argument("--steps", type=int, default=60, help="steps of the range test (60)")
    s = lr.add_argument_group("staged search (CLB's defaults)")
    s.add_argument(
        "--pow_range",
        default="-6,-1",
        help="log10(lr) range of stage 1; write it with = (--pow_range=-6,-1)",
    )
    s.add_argument("--draws", default="20,10,5", help="trials per stage (20,10,5)")
    s.add_argument("--stage_epochs", default="5,25,50", help="epochs per trial (5,25,50)")
    s.add_argument(
        "--widths", default="1,0.1", help="half-widths of stages 2.. around the best p (1,0.1)"
    )
    batch.add_argument(
        "--batch_sizes", default="2,4,8,16,32", help="sizes to try, increasing (2,4,8,16,32)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen search and write its outputs."""
    from napari_cellseg.cli.train import tune_allocator

    if not getattr(args, "search", None):
        raise CellsegError("say what to tune: `cellseg tune lr ...` or `cellseg tune batch ...`")
    tune_allocator()
    config = config_from_args(args)
    out = Path(args.out)
    if args.search == "lr" and args.range_test:
        return _range_test(args, config, out)
    return _study(args, config, out)


def _range_test(args: argparse.Namespace, config: TrainConfig, out: Path) -> int:
    from tqdm import tqdm

    from napari_cellseg.io.outputs import refuse_existing
    from napari_cellseg.tune import check_lr_range, range_test
    from napari_cellseg.tune.outputs import plot_range_test, write_options

    check_lr_range(args.min_lr, args.max_lr)
    refuse_existing(
        [out / "tuned_lr.yaml", out / "lr_range_test.png"],
        overwrite=args.overwrite,
        what="range-test file",
    )
    out.mkdir(parents=True, exist_ok=True)
    gen = range_test(config, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps)
    with tqdm(total=args.steps, unit="step", desc="range test", dynamic_ncols=True) as bar:
        try:
            while True:
                point = next(gen)
                bar.update(1)
                bar.set_postfix(lr=f"{point.lr:.2g}", loss=f"{point.smoothed:.4f}")
        except StopIteration as done:
            result = done.value
    plot = plot_range_test(result, out / "lr_range_test.png")
    tuned = dataclasses.replace(config, learning_rate=result.suggested_lr)
    yaml_path = write_options(
        tuned,
        out / "tuned_lr.yaml",
        comment=f"learning rate from a range test ({len(result.lrs)} steps, "
        f"{result.lrs[0]:.2g}..{result.lrs[-1]:.2g}): a tenth of the loss minimum at "
        f"{result.min_loss_lr:.3g}",
    )
    stop = f", diverged at {result.diverged_lr:.3g}" if result.diverged_lr else ""
    print(
        f"suggested learning rate {result.suggested_lr:.3g} (loss lowest at "
        f"{result.min_loss_lr:.3g}{stop}; {result.seconds:.0f} s)"
    )
    print(f"plot: {plot}\noptions: {yaml_path} (cellseg train --args_load_path {yaml_path})")
    return 0


def _study(args: argparse.Namespace, config: TrainConfig, out: Path) -> int:
    from napari_cellseg.tune import TrialReport, tune_batch, tune_lr
    from napari_cellseg.tune.outputs import plot_trials, write_best_pow, write_options

    out.mkdir(parents=True, exist_ok=True)
    model = Path(config.model) if config.model else out / f"best_{args.search}.pt"
    storage = args.storage or f"sqlite:///{out / 'tune.db'}"

    def on_trial(t: TrialReport) -> None:
        value = ", ".join(f"{k} {v:.3g}" for k, v in t.params.items())
        loss = "" if t.val_loss is None else f" val_loss {t.val_loss:.4f}"
        stage = f"stage {t.stage} " if t.stage else ""
        print(
            f"trial {t.number} {stage}{value}: {t.state}{loss} "
            f"({t.epochs} epochs, {t.seconds:.0f} s)"
        )

    common = {"storage": storage, "study_name": args.study_name, "model_path": model}
    if args.search == "lr":
        result = tune_lr(
            config,
            stages=_stages(args),
            pow_range=_pair(args.pow_range, "--pow_range"),
            on_trial=on_trial,
            **common,
        )
        write_best_pow(result, out)
        field = "learning rate"
    else:
        sizes = _ints(args.batch_sizes, "--batch_sizes")
        result = tune_batch(config, batch_sizes=sizes, on_trial=on_trial, **common)
        field = "batch size"
    yaml_path = write_options(
        result.config,
        out / f"tuned_{args.search}.yaml",
        comment=f"{field} from study {result.study_name} ({storage}), trial {result.best_trial}",
    )
    plot = plot_trials(result, out / f"tune_{args.search}.png")
    print(
        f"best {field} {result.best:.4g} (trial {result.best_trial}, val_loss "
        f"{result.best_val_loss:.4f}); model {result.model_path}"
    )
    print(f"plot: {plot}\noptions: {yaml_path} (cellseg train --args_load_path {yaml_path})")
    return 0


def _stages(args: argparse.Namespace) -> list:
    from napari_cellseg.tune import Stage

    draws = _ints(args.draws, "--draws")
    epochs = _ints(args.stage_epochs, "--stage_epochs")
    widths = _floats(args.widths, "--widths") if args.widths.strip() else []
    if not (len(draws) == len(epochs) == len(widths) + 1):
        raise CellsegError(
            f"--draws ({len(draws)} values) and --stage_epochs ({len(epochs)}) need one value "
            f"per stage and --widths ({len(widths)}) one per stage after the first"
        )
    return [
        Stage(d, e, None if i == 0 else widths[i - 1])
        for i, (d, e) in enumerate(zip(draws, epochs))
    ]


def _pair(text: str, flag: str) -> tuple[float, float]:
    values = _floats(text, flag)
    if len(values) != 2:
        raise CellsegError(f"{flag} takes two numbers like -6,-1, not {text!r}")
    return values[0], values[1]


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CellsegError(f"{flag} takes comma-separated numbers, not {text!r}") from None


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CellsegError(f"{flag} takes comma-separated integers, not {text!r}") from None
