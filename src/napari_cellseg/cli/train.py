"""``cellseg train``: train a model with Omnipose's or CLB's flags, or on DeLTA folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_cellseg.config import TrainConfig, add_config_arguments, config_from_args
from napari_cellseg.errors import CellsegError

EPILOG = """examples:
  Omnipose style:
    cellseg train --dir /data/train --mask_filter _masks --nchan 1 --nclasses 2 \\
        --learning_rate 0.1 --RAdam --batch_size 16 --n_epochs 4000 --tyx 224,224
  CLB style:
    cellseg train --architecture dcan --epochs 50 --batch 6 --augments 10 \\
        --trim_method reflect --train_data /data/T8/train --val_data /data/T8/val \\
        --model models/dcan.pt --tb_dir tensorboard/ --csv_log log.csv --seed 48
  DeLTA folders (img/, seg/, optional wei/):
    cellseg train --architecture unet --dir /data/delta_seg --weight_map seg_weights_2D
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (omni, unet or dcan) on a training folder",
        description="Train a cell-segmentation model. Accepts Omnipose's and CLB's flags "
        "unchanged; command-line flags override --args_load_path.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)  # omnipose --train
    parser.add_argument("--verbose", action="store_true", help="print one line per epoch")
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="at the end, segment the --test_dir images with the model and report AP, F1 "
        "and PQ against their masks (as `cellseg evaluate`)",
    )
    return parser


def tune_allocator() -> None:
    """Let glibc keep freed memory instead of returning it to the system at once.

    Augmentation and targets allocate and free many crop-sized temporaries; on virtual
    machines where fresh pages are expensive, returning them costs more than the work itself.
    A no-op where glibc is not the allocator.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    """Run the training generator with a progress bar."""
    from tqdm import tqdm

    from napari_cellseg.train import train

    tune_allocator()

    config = config_from_args(args)
    if args.evaluate and not config.test_dir:
        raise CellsegError("--evaluate scores the model on --test_dir: give --test_dir too")
    gen = train(config)
    bar = None
    try:
        while True:
            event = next(gen)
            if bar is None:
                bar = tqdm(
                    total=event.total_steps,
                    initial=event.step - 1,
                    unit="step",
                    dynamic_ncols=True,
                    desc="train",
                )
            if event.kind == "step":
                bar.update(event.step - bar.n)
                bar.set_postfix(epoch=f"{event.epoch}/{event.n_epochs}", loss=f"{event.loss:.4f}")
            elif args.verbose or event.epoch == event.n_epochs:
                val = "" if event.val_loss is None else f" val_loss {event.val_loss:.4f}"
                bar.write(f"epoch {event.epoch}/{event.n_epochs} loss {event.loss:.4f}{val}")
    except StopIteration as done:
        result = done.value
    except KeyboardInterrupt:
        gen.close()
        if bar is not None:
            bar.close()
        print("interrupted: the last state was saved; continue with --resume")
        return 130
    if bar is not None:
        bar.close()
    print(f"model saved to {result.model_path}")
    if args.evaluate:
        _evaluate(result.model_path, config)
    return 0


def _evaluate(model_path: Path, config: TrainConfig) -> None:
    """Score the model on the validation folder(s) and print the evaluate tables."""
    from napari_cellseg.cli.evaluate import print_tables
    from napari_cellseg.metrics import summarize
    from napari_cellseg.predict import Segmenter, score_dataset
    from napari_cellseg.train.samples import discover_folders

    seg = Segmenter.from_file(model_path, device=config.device)
    rows = []
    for ds in discover_folders(config.test_dir, config):
        rows += score_dataset(seg, ds, channel_axis=config.channel_axis)
    print(f"validation images segmented by {model_path.name}:")
    print_tables(rows, summarize(rows))
