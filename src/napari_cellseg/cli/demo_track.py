"""``cellseg demo --track``: the tracking workflow on synthetic movies the package generates.

Writes a training and a held-out movie of dividing cells as Cell Tracking Challenge folders,
trains a tracking model on the first for the time budget, tracks the second from its
(identity-free) labels and scores it (CTC TRA and DET) beside LapTrack on the same labels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def detections(labels: np.ndarray, seed: int) -> np.ndarray:
    """The labels with each frame's ids shuffled: what a segmentation gives a tracker."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for t, frame in enumerate(labels):
        ids = np.unique(frame)[1:]
        lut = np.zeros(int(frame.max()) + 1, labels.dtype)
        lut[ids] = rng.permutation(len(ids)) + 1
        out[t] = lut[frame]
    return out


def run_track_demo(args: argparse.Namespace, out: Path) -> int:
    """Generate, train, track, score; returns 0."""
    from napari_cellseg import synth
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.errors import CellsegError
    from napari_cellseg.track import folders
    from napari_cellseg.track.engine import run, track_stack
    from napari_cellseg.track.scores import ctc_scores_arrays
    from napari_cellseg.train import train_until

    kind = args.kind
    print(f"[1/4] generating a training and a held-out movie of dividing synthetic {kind} in {out}")
    train_movie = synth.timelapse(kind, n_frames=30, shape=(256, 256), n_cells=8, seed=args.seed)
    test_movie = synth.timelapse(
        kind, n_frames=20, shape=(256, 256), n_cells=8, seed=args.seed + 10_000
    )
    train_seq = folders.write_sequence(
        out / "train", train_movie.images, train_movie.labels, train_movie.tracks
    )
    folders.write_sequence(out / "test", test_movie.images, test_movie.labels, test_movie.tracks)
    divisions = sum(1 for t in train_movie.tracks if t.parent) // 2
    print(f"      training movie: {len(train_movie.tracks)} tracks, {divisions} divisions")
    print(f"[2/4] training a tracking model for up to {args.minutes:g} min")
    model = out / "models" / "demo_track.pt"
    config = TrainConfig(
        dir=str(train_seq),
        architecture="track",
        tyx=(64, 64),
        n_epochs=args.epochs,
        batch_size=8,
        nimg_per_epoch=256,
        nbase=(16, 32, 64, 128),
        learning_rate=1e-3,
        model=str(model),
        seed=args.seed,
    )
    result = train_until(config, time.monotonic() + args.minutes * 60)
    print(f"      {result.epochs_done} epochs, final loss {result.final_loss:.1f}; model: {model}")
    print("[3/4] tracking the held-out movie from its labels (identities removed)")
    labels = detections(test_movie.labels, args.seed)
    tracked = run(track_stack(test_movie.images, labels, model=model, device="auto"))
    folders.write_result(out / "test" / "01_RES", tracked.labels, tracked.tracks)
    print("[4/4] scoring against the true lineage (Cell Tracking Challenge TRA / DET)")
    truth = (test_movie.labels, test_movie.tracks)
    try:
        ours = ctc_scores_arrays(tracked.labels, tracked.tracks, *truth, metrics=("DET", "TRA"))
        from napari_cellseg.track.laptrack import link

        lap_labels, lap_tracks = link(labels)
        lap = ctc_scores_arrays(lap_labels, lap_tracks, *truth, metrics=("DET", "TRA"))
    except CellsegError as missing:  # py-ctcmetrics and laptrack are the [track] extra
        print(f"      no scores: {missing}")
        return 0
    print(
        f"tracking model: TRA {ours['TRA']:.3f}  DET {ours['DET']:.3f}   LapTrack: TRA "
        f"{lap['TRA']:.3f}  DET {lap['DET']:.3f}   result in {out / 'test' / '01_RES'}"
    )
    return 0
