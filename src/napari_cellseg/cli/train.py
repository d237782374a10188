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
  Two processes (DistributedDataParallel; global batch 2 x 8 = 16), two equivalent ways:
    cellseg train --ddp 2 --dir /data/train --batch_size 8
    torchrun --nproc_per_node 2 -m napari_cellseg.cli train --dir /data/train --batch_size 8
  (docs/training_at_scale.md: batch and learning-rate semantics, what rank 0 writes)
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
    """Run the training generator with a progress bar (on rank 0 under ``torchrun``); with
    ``--ddp``/``--dataparallel`` outside ``torchrun``, replace this process by ``torchrun``."""
    from napari_cellseg.train import distributed

    config = config_from_args(args)
    if args.evaluate and not config.test_dir:
        raise CellsegError("--evaluate scores the model on --test_dir: give --test_dir too")
    if (config.ddp or config.dataparallel) and not distributed.launched():
        _exec_torchrun(config, args._argv)
    with distributed.session(config):
        return _train(args, config, quiet=not distributed.is_main())


def _exec_torchrun(config: TrainConfig, argv: list[str]) -> None:
    """Replace this process by ``torchrun`` running the same command on ``--ddp`` ranks."""
    import os

    import torch

    from napari_cellseg.train import distributed

    processes = config.ddp if config.ddp > 0 else distributed.default_processes()
    if config.dataparallel and not config.ddp:
        print(
            "--dataparallel (Omnipose: torch DataParallel over the GPUs) runs as "
            f"DistributedDataParallel on this machine: {processes} process(es), one per "
            f"{'GPU' if torch.cuda.is_available() else 'CPU core (no GPU here)'}, global batch "
            f"{processes} x --batch_size {config.batch_size}",
            flush=True,
        )
    command = distributed.torchrun_command(argv, processes)
    print("running: " + " ".join(command), flush=True)
    os.execv(command[0], command)


def _train(args: argparse.Namespace, config: TrainConfig, *, quiet: bool) -> int:
    """Iterate the training generator; ``quiet`` (ranks other than 0) prints nothing."""
    from tqdm import tqdm

    from napari_cellseg.train import train

    tune_allocator()
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
                    disable=quiet,
                )
            if event.kind == "step":
                bar.update(event.step - bar.n)
                bar.set_postfix(epoch=f"{event.epoch}/{event.n_epochs}", loss=f"{event.loss:.4f}")
            elif not quiet and (args.verbose or event.epoch == event.n_epochs):
                val = "" if event.val_loss is None else f" val_loss {event.val_loss:.4f}"
                bar.write(f"epoch {event.epoch}/{event.n_epochs} loss {event.loss:.4f}{val}")
    except StopIteration as done:
        result = done.value
    except KeyboardInterrupt:
        gen.close()
        if bar is not None:
            bar.close()
        if not quiet:
            print("interrupted: the last state was saved; continue with --resume")
        return 130
    if bar is not None:
        bar.close()
    if quiet:
        return 0
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
