"""Tracking throughput: milliseconds per frame of about 150 cells, against DeLTA's figure.

DeLTA 1 reports "a frame of about 150 cells takes < 700 ms" (Lugagne et al. 2020; on a GPU).
This script times :func:`napari_cellseg.track.engine.track_stack` (every seed window of a frame
in one batched forward pass, DeLTA's decoding, relabelling) on a synthetic movie of dividing
nuclei with ~150 cells per frame, for the two network sizes this package uses: the default
U-Net with 96 x 96 windows at a 30 px diameter (``bench/tracking.py --train``) and the small one
of ``cellseg demo --track`` (16..128 channels, 64 x 64 windows). Speed does not depend on the
weights, so the networks are freshly initialised. Prints the median ms per frame and per cell
over ``--repeats`` runs of the movie, and a ``RESULT`` line with DeLTA's 700 ms as the reference
(ratio > 1: faster). DeLTA itself on this CPU (``bench/peers/delta_track.py``) predicts about
0.4 s per seed window; it is not rerun here.

Run by hand: ``python bench/tracking_speed.py [--repeats 3] [--frames 6]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import median, result
from napari_cellseg import synth
from napari_cellseg.models import ModelSpec, build_model
from napari_cellseg.track.engine import Tracker, run, track_stack

#: DeLTA 1's published time for a frame of about 150 cells.
DELTA_MS_PER_150_CELLS = 700.0

CONFIGS = {
    "default (96x96 windows, diameter 30)": {"tyx": [96, 96], "diameter": 30.0, "nbase": None},
    "small (64x64 windows, diameter 20)": {
        "tyx": [64, 64],
        "diameter": 20.0,
        "nbase": (16, 32, 64, 128),
    },
}


def tracker(config: dict) -> Tracker:
    """A freshly initialised tracking network of ``config``'s size."""
    kwargs = {"nbase": config["nbase"]} if config["nbase"] else {}
    spec = ModelSpec(arch="track", nchan=4, **kwargs)
    meta = {"training": {"tyx": config["tyx"]}, "diameter": config["diameter"]}
    return Tracker(build_model(spec), spec, meta, device="cpu")


def main() -> None:
    """Time both configurations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)
    movie = synth.timelapse(
        "nuclei", n_frames=args.frames, shape=(768, 768), n_cells=150, seed=0, cycle=1000
    )
    cells = [len(np.unique(f)) - 1 for f in movie.labels]
    print(f"movie: {args.frames} frames of 768x768, {np.mean(cells):.0f} cells per frame")
    per_frame = {}
    for name, config in CONFIGS.items():
        model = tracker(config)
        run(track_stack(movie.images[:2], movie.labels[:2], model=model))  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run(track_stack(movie.images, movie.labels, model=model))
            times.append((time.perf_counter() - start) / (args.frames - 1))
        ms = median(times) * 1000
        per_frame[name] = ms
        print(
            f"{name}: {ms:.0f} ms per frame, {ms / np.mean(cells[1:]):.2f} ms per cell "
            f"(median of {args.repeats})"
        )
    ms_150 = per_frame["default (96x96 windows, diameter 30)"] * 150 / np.mean(cells[1:])
    result(
        "track_ms_per_150_cells",
        ms_150,
        DELTA_MS_PER_150_CELLS,
        higher_is_better=False,
        unit="ms",
        target="< 700 ms (DeLTA 1, published)",
    )


if __name__ == "__main__":
    main()
