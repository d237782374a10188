"""``cellseg demo``: the whole workflow on synthetic data the package generates.

Generates a synthetic training set, checks its annotations, trains a small model for a few
minutes, segments held-out images, prints their accuracy and writes outline overlays.
``--gui`` opens napari with the sample data and the plugin's widgets instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from napari_cellseg.errors import CellsegError
from napari_cellseg.families import family_names, get_family


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole workflow on synthetic data (generate, QC, train, segment, score)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        default=None,
        help="working folder (default: ./cellseg-demo, or ~/cellseg-demo when run from the "
        "napari-cellseg source tree); when it is not empty, the first free <out>-2, "
        "<out>-3, ... is used instead, so nothing in it is replaced",
    )
    p.add_argument(
        "--kind", default="bacteria", choices=("bacteria", "nuclei"), help="synthetic data to use"
    )
    p.add_argument(
        "--architecture",
        default="omni",
        choices=[n for n in family_names() if not get_family(n).tracks],
    )
    p.add_argument(
        "--track",
        action="store_true",
        help="the tracking workflow instead: synthetic dividing cells, a tracking model "
        "trained for --minutes, tracked held-out movie scored (TRA, DET) beside LapTrack",
    )
    p.add_argument("--n_train", type=int, default=24, help="training images")
    p.add_argument("--n_test", type=int, default=4, help="held-out images")
    p.add_argument(
        "--minutes",
        type=float,
        default=3.0,
        help="training time budget in minutes (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=60, help="at most this many epochs")
    p.add_argument("--no_train", action="store_true", help="only generate data and run QC")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--gui", action="store_true", help="open napari with the sample data and the widgets docked"
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 when every step worked."""
    if args.gui:
        import importlib.util

        if importlib.util.find_spec("napari") is None:
            raise CellsegError(
                "cellseg demo --gui opens napari, which is not installed: "
                'pip install "napari-cellseg[all]" (napari and Qt), then run it again'
            )
        from napari_cellseg.napari.demo import open_demo_viewer

        open_demo_viewer(kind=args.kind)
        return 0
    from napari_cellseg import synth
    from napari_cellseg.io.datasets import discover
    from napari_cellseg.qc import qc_dataset

    out = _fresh_folder(Path(args.out).resolve() if args.out else default_folder(Path.cwd()))
    if args.track:
        from napari_cellseg.cli.demo_track import run_track_demo

        return run_track_demo(args, out)
    train_dir, test_dir = out / "train", out / "test"
    print(
        f"[1/4] generating {args.n_train} training + {args.n_test} held-out synthetic "
        f"{args.kind} images in {out}"
    )
    synth.make_dataset(train_dir, kind=args.kind, n=args.n_train, shape=(256, 256), seed=args.seed)
    synth.make_dataset(
        test_dir, kind=args.kind, n=args.n_test, shape=(384, 384), seed=args.seed + 10_000
    )
    print("[2/4] checking the annotations")
    reports = qc_dataset(discover(train_dir))
    n_blocking = sum(r.blocking for _, r in reports)
    n_warn = sum(p.severity == "warning" for _, r in reports for p in r.problems)
    print(
        f"      {len(reports)} masks checked: {n_blocking} with blocking problems, "
        f"{n_warn} warnings"
    )
    if args.no_train:
        return 0 if n_blocking == 0 else 1
    model_path = _train(args, train_dir, out)
    _segment_and_score(model_path, test_dir, out)
    return 0


def default_folder(cwd: Path) -> Path:
    """``<cwd>/cellseg-demo``, or ``~/cellseg-demo`` when ``cwd`` holds this package's source
    (a clone): the demo's data and models do not belong in the source tree."""
    import napari_cellseg

    source = Path(napari_cellseg.__file__).resolve().parent
    if source.is_relative_to(cwd.resolve()):
        home = Path.home() / "cellseg-demo"
        print(f"      {cwd} holds the napari-cellseg source; the demo writes to {home} instead")
        return home
    return cwd / "cellseg-demo"


def _fresh_folder(out: Path) -> Path:
    """``out`` if it is new or empty, else the first free ``<out>-2``, ``<out>-3``, ...

    The demo writes a whole dataset, a model and predictions: it never writes into a folder
    that already holds files (an earlier demo's model, or anything else of the user's).
    """
    candidate, n = out, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    if candidate != out:
        print(f"      {out} is not empty; this run writes to {candidate} instead")
    return candidate


def _train(args: argparse.Namespace, train_dir: Path, out: Path) -> Path:
    from tqdm import tqdm

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.train import Progress, train_until

    config = TrainConfig(
        dir=str(train_dir),
        architecture=args.architecture,
        n_epochs=args.epochs,
        batch_size=8,
        tyx=(128, 128),
        learning_rate=2e-3,
        warmup_epochs=2,
        nbase=(16, 32, 64, 128),
        model=str(out / "models" / f"demo_{args.architecture}.pt"),
        save_every=5,
        seed=args.seed,
    )
    deadline = time.monotonic() + args.minutes * 60
    print(
        f"[3/4] training a small {args.architecture} model for up to {args.minutes:g} min "
        f"({args.epochs} epochs at most)"
    )
    bar = None

    def show(event: Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=event.total_steps, unit="step", desc="train", dynamic_ncols=True)
        bar.update(event.step - bar.n)
        bar.set_postfix(epoch=f"{event.epoch}/{event.n_epochs}", loss=f"{event.loss:.3f}")

    result = train_until(config, deadline, on_event=show)
    if bar is not None:
        bar.close()
    if result.stopped:
        print(
            f"      time budget of {args.minutes:g} min reached after {result.epochs_done} of "
            f"{args.epochs} epochs (--minutes trains longer)"
        )
    print(
        f"      {result.epochs_done} epochs, final loss {result.final_loss:.4f}; "
        f"model: {result.model_path}"
    )
    return result.model_path


def _segment_and_score(model_path: Path, test_dir: Path, out: Path) -> None:
    from napari_cellseg.io import datasets
    from napari_cellseg.io.images import write_mask
    from napari_cellseg.metrics import summarize
    from napari_cellseg.overlay import save_outline_png
    from napari_cellseg.predict import Segmenter, score_dataset

    print("[4/4] segmenting the held-out images")
    pred_dir = out / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)

    def save(sample, _i, frame, result, row) -> None:  # noqa: ANN001 - score_dataset callback
        write_mask(pred_dir / f"{sample.name}_masks.tif", result.labels)
        png = save_outline_png(pred_dir / f"{sample.name}_outlines.png", frame, result.labels)
        print(
            f"      {sample.name}: {row['n_pred']} cells found / {row['n_gt']} true, "
            f"AP@0.5 {row['ap_50']:.3f}, AP@0.75 {row['ap_75']:.3f}  ({png.name})"
        )

    rows = score_dataset(
        Segmenter.from_file(model_path), datasets.discover(test_dir, "omnipose"), on_image=save
    )
    summary = summarize(rows)
    print(
        f"mean AP@0.5 = {summary['ap_50']:.3f}   mean AP@0.75 = {summary['ap_75']:.3f}   "
        f"overlays and masks in {pred_dir}"
    )
