"""Tracking: linking ground-truth detections of Fluo-N2DH-GOWT1/01 into CTC tracks (DET, TRA).

The ground truth (``01_GT/TRA``: markers + ``man_track.txt``) is stripped of its identities:
each frame's cells are renumbered independently, in a random order, so only the detections
remain. They are linked again and scored against the ground truth with the CTC measures
(``napari_cellseg.track.scores.ctc_scores_arrays``, i.e. py-ctcmetrics).

- **LapTrack (ours)**: :func:`napari_cellseg.track.laptrack.link` (automatic distance, divisions,
  one-frame gaps as parent-linked tracks).
- **Reference, measured in the same run**: LapTrack used as its documentation shows
  (``skimage.measure.regionprops_table`` per frame, ``LapTrack.predict_dataframe`` with the same
  distance cutoffs and LapTrack's automatic alternative costs, no gap closing since a closed gap
  is not a valid CTC track; one CTC id per ``track_id``, parents from ``split_df``). Its
  scores and time are the ``ref`` of the ``RESULT`` lines; ``ratio > 1`` is better.
- **The learned tracker** (only with ``--model M`` or ``--train``): see :func:`learned_tracker`.
  ``--model M`` tracks the whole sequence with the model; ``--train`` cross-validates over
  frame ranges (train on frames 0-45, test on 46-91, and the reverse) with
  ``cellseg train --architecture track``, and LapTrack is scored on the same test ranges.
- **DeLTA 2.0** (only with ``--delta SECONDS``, needs ``bench/peers/setup_delta.sh``): DeLTA's
  own tracking U-Net trained for ``SECONDS`` on the six folders exported from frames 0-45, run
  on the seeds of frames 46-91; scored by seed-level link accuracy (the seed's successors at
  ``t`` found by DeLTA's score rule, compared with the ground truth), next to LapTrack's.

Times are medians of ``--repeats`` runs (the first call of LapTrack, which imports it, is not
timed) and are per detection (``ms/cell``).

Run by hand: ``python bench/tracking.py [--repeats N] [--synthetic] [--model M | --train]
[--delta SECONDS]``. Without ``../shared/data/tracking/Fluo-N2DH-GOWT1/01`` the GOWT1 part is
SKIPPED; ``--synthetic`` adds a synthetic movie (``napari_cellseg.synth.timelapse``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import DATA, REPO, median, result, run_measured
from napari_cellseg.track.ctc import Track, tracks_from_labels
from napari_cellseg.track.folders import read_sequence, write_sequence
from napari_cellseg.track.laptrack import automatic_max_distance, frame_detections, link
from napari_cellseg.track.scores import ctc_scores_arrays

SEQUENCE = DATA / "tracking" / "Fluo-N2DH-GOWT1" / "01"
DELTA_PY = Path(os.environ.get("DELTA_VENV", "/tmp/peers/delta")) / "bin" / "python"
DELTA_RUNNER = REPO / "bench" / "peers" / "delta_track.py"
#: Cross-validation over frame ranges: (train frames, test frames), as slices of the sequence.
FOLDS = ((slice(0, 46), slice(46, 92)), (slice(46, 92), slice(0, 46)))
MEASURES = ("DET", "TRA")

Linker = Callable[[np.ndarray], tuple[np.ndarray, list[Track]]]


@dataclass
class Scored:
    """One tracker on one sequence: its scores and its time."""

    name: str
    scores: dict[str, float]
    seconds: list[float]
    n_cells: int
    n_tracks: int

    @property
    def ms_per_cell(self) -> float:
        """Median time per detection, in milliseconds."""
        return 1000 * median(self.seconds) / max(self.n_cells, 1)

    def line(self) -> str:
        """One line for people."""
        scores = ", ".join(f"{k} {self.scores[k]:.4f}" for k in MEASURES if k in self.scores)
        times = ", ".join(f"{s:.3f}" for s in self.seconds)
        return (
            f"{self.name}: {scores}; {self.n_tracks} tracks; times (s) {times}; "
            f"{self.ms_per_cell:.3f} ms/cell"
        )


# ---------------------------------------------------------------------------------- data


def strip_identities(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Renumber each frame's cells independently, in a random order (detections only).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(T, Y, X)`` tracked labels.
    seed : int
        Random seed of the new numbering.

    Returns
    -------
    numpy.ndarray
        ``(T, Y, X)`` int32 labels with ids ``1..n_t`` in each frame, unrelated over time.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.int32)
    for t, frame in enumerate(labels):
        ids = np.unique(frame)
        ids = ids[ids > 0]
        table = np.zeros(int(frame.max()) + 1, np.int32)
        table[ids] = rng.permutation(len(ids)) + 1
        out[t] = table[frame]
    return out


def clip(labels: np.ndarray, tracks: Sequence[Track], frames: slice) -> list[Track]:
    """The track table of a frame range of a tracked stack (parents outside it dropped)."""
    sub = labels[frames]
    present = {int(i) for i in np.unique(sub) if i}
    parents = {t.id: t.parent for t in tracks if t.id in present and t.parent in present}
    return tracks_from_labels(sub, parents)


def n_cells(labels: np.ndarray) -> int:
    """Number of detections of a stack (cells summed over frames)."""
    return sum(len(np.unique(frame)) - 1 + (not frame.min() == 0) for frame in labels)


# ------------------------------------------------------------------------------- linkers


def reference_laptrack(labels: np.ndarray) -> tuple[np.ndarray, list[Track]]:
    """LapTrack as its documentation uses it: regionprops table -> ``predict_dataframe``.

    Same distance as ours (the automatic one), LapTrack's automatic alternative costs, no gap
    closing; one CTC id per LapTrack ``track_id``, parents from ``split_df``.
    """
    import pandas as pd
    from laptrack import LapTrack
    from skimage.measure import regionprops_table

    rows = []
    for t, frame in enumerate(labels):
        table = pd.DataFrame(regionprops_table(frame, properties=("label", "centroid")))
        table["frame"] = t
        rows.append(table)
    df = pd.concat(rows, ignore_index=True).rename(columns={"centroid-0": "y", "centroid-1": "x"})
    distance = automatic_max_distance([frame_detections(f) for f in labels])
    tracker = LapTrack(cutoff=distance**2, splitting_cutoff=distance**2, gap_closing_cutoff=False)
    track_df, split_df, _ = tracker.predict_dataframe(df, ["y", "x"], only_coordinate_cols=False)
    track_df["ctc"] = track_df["track_id"] + 1
    tracked = np.zeros(labels.shape, np.int32)
    for t, group in track_df.groupby("frame"):
        table = np.zeros(int(labels[t].max()) + 1, np.int32)
        table[group["label"].to_numpy()] = group["ctc"].to_numpy()
        tracked[t] = table[labels[t]]
    parents = {int(c) + 1: int(p) + 1 for p, c in split_df.to_numpy()} if len(split_df) else {}
    return tracked, tracks_from_labels(tracked, parents)


def run_linker(
    name: str,
    linker: Linker,
    detections: np.ndarray,
    gt: np.ndarray,
    gt_tracks: list[Track],
    repeats: int,
) -> Scored:
    """Time ``linker`` on the detections (median of ``repeats``) and score its result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        tracked, tracks = linker(detections)
        seconds.append(time.perf_counter() - start)
    scores = ctc_scores_arrays(tracked, tracks, gt, gt_tracks, metrics=MEASURES)
    return Scored(name, dict(scores), seconds, n_cells(detections), len(tracks))


# ------------------------------------------------------------------------ learned tracker


def track_with_model(images: np.ndarray, labels: np.ndarray, model: Path):
    """THE LEARNED TRACKER: ``track_stack`` with a tracking model -> ``(labels, tracks)``."""
    from napari_cellseg.track.engine import track_stack

    gen = track_stack(images, labels, model=str(model))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        out = stop.value
    return out.labels, out.tracks


def train_model(folder: Path, model: Path, epochs: int, extra: Sequence[str] = ()) -> float:
    """``cellseg train --architecture track`` on a CTC folder; returns the wall-clock seconds."""
    cmd = [
        sys.executable,
        "-m",
        "napari_cellseg.cli",
        "train",
        "--architecture",
        "track",
        "--dir",
        str(folder),
        "--n_epochs",
        str(epochs),
        "--model",
        str(model),
        *extra,
    ]
    measured = run_measured(cmd, echo=False)
    if measured.returncode != 0:
        raise RuntimeError(f"cellseg train failed:\n{measured.output[-3000:]}")
    return measured.seconds


def learned_tracker(
    images: np.ndarray,
    detections: np.ndarray,
    gt: np.ndarray,
    gt_tracks: list[Track],
    args: argparse.Namespace,
) -> None:
    """Score the learned tracker, next to LapTrack, and print its ``RESULT`` lines.

    ``--model M``: one run of ``M`` on the whole sequence. ``--train``: for each fold of
    :data:`FOLDS`, train with ``cellseg train --architecture track`` on the training frames
    (a CTC folder written from them) and track the test frames; LapTrack is scored on the same
    test frames, and is the reference.
    """
    if args.model:
        runs = [(slice(0, len(gt)), Path(args.model), None)]
    else:
        runs = []
        work = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
        for k, (train, test) in enumerate(FOLDS):
            folder = write_sequence(
                work / f"fold{k}", images[train], gt[train], clip(gt, gt_tracks, train)
            )
            model = work / f"fold{k}.pt"
            seconds = train_model(folder, model, args.epochs, args.train_args)
            print(f"fold {k}: trained on frames {train.start}-{train.stop - 1} in {seconds:.0f} s")
            runs.append((test, model, seconds))
    learned, lap = [], []
    for test, model, _ in runs:
        part_gt, part_tracks = gt[test], clip(gt, gt_tracks, test)
        frames = f"frames {test.start}-{test.stop - 1}"
        ours = run_linker(
            f"learned ({model.name}) {frames}",
            lambda d, test=test, model=model: track_with_model(images[test], d, model),
            detections[test],
            part_gt,
            part_tracks,
            1,
        )
        ref = run_linker(f"LapTrack {frames}", link, detections[test], part_gt, part_tracks, 1)
        print(ours.line())
        print(ref.line())
        learned.append(ours)
        lap.append(ref)
    for measure in MEASURES:
        result(
            f"tracking_learned_{measure.lower()}_gowt1_01",
            float(np.mean([s.scores[measure] for s in learned])),
            float(np.mean([s.scores[measure] for s in lap])),
            higher_is_better=True,
            unit=measure,
            target=">LapTrack",
        )


# ----------------------------------------------------------------------------- DeLTA peer


def _successors(gt: np.ndarray, tracks: dict[int, Track], t: int, seed: int) -> set[int]:
    """Ground-truth ids at frame ``t`` that the cell ``seed`` of ``t - 1`` became."""
    here = {int(i) for i in np.unique(gt[t]) if i}
    if seed in here:
        return {seed}
    return {i for i in here if tracks[i].parent == seed and tracks[i].begin == t}


def write_delta_set(
    folder: Path,
    images: np.ndarray,
    gt: np.ndarray,
    gt_tracks: list[Track],
    frames: range,
    window: int,
    *,
    targets: bool,
) -> list[tuple[str, int, int]]:
    """DeLTA's six folders (or the four inputs) for every seed of ``frames`` (t-1 -> t).

    One ``window`` x ``window`` sample centred on each seed (DeLTA crops its 256 x 256 input
    from it). Returns ``(name, t, seed id)`` of each sample.
    """
    import tifffile

    from napari_cellseg.track.weights import tracking_weights

    names = ("img", "seg", "previmg", "segall") + (("mot_dau", "wei") if targets else ())
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    by_id = {tr.id: tr for tr in gt_tracks}
    half = window // 2
    pad = [(0, 0), (half, half), (half, half)]
    padded_images = np.pad(images.astype(np.float32), pad, mode="reflect")
    padded_gt = np.pad(gt, pad)
    samples = []
    for t in frames:
        for d_id, centre in zip(*_ids_and_centres(gt[t - 1])):
            y, x = (int(round(c)) for c in centre)
            box = (slice(y, y + window), slice(x, x + window))  # centred, in padded coordinates
            prev, cur = padded_gt[t - 1][box], padded_gt[t][box]
            arrays = {
                "img": padded_images[t][box],
                "previmg": padded_images[t - 1][box],
                "seg": (prev == d_id).astype(np.uint8) * 255,
                "segall": (cur > 0).astype(np.uint8) * 255,
            }
            if targets:
                mot_dau = np.isin(cur, list(_successors(gt, by_id, t, d_id)))
                arrays["mot_dau"] = mot_dau.astype(np.uint8) * 255
                arrays["wei"] = tracking_weights(mot_dau, cur > 0).astype(np.uint16)
            name = f"Position01_Frame{t:03d}_Cell{d_id:03d}"
            for key, array in arrays.items():
                image = array if key in ("seg", "segall", "mot_dau", "wei") else _u16(array)
                tifffile.imwrite(folder / key / f"{name}.tif", image, compression="zlib")
            samples.append((name, t, d_id))
    return samples


def _u16(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, (0.5, 99.5))
    return (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 65535).astype(np.uint16)


def _ids_and_centres(frame: np.ndarray) -> tuple[list[int], list[tuple[float, float]]]:
    d = frame_detections(frame)
    return [int(i) for i in d.ids], [tuple(c) for c in d.centroids]


def delta_peer(
    images: np.ndarray,
    gt: np.ndarray,
    gt_tracks: list[Track],
    seconds: float,
    window: int = 320,
    limit: int = 0,
    learned: str | None = None,
) -> None:
    """Train DeLTA's tracking U-Net on frames 0-45 for ``seconds``, predict the seeds of frames
    46-91, and compare its seed-level link accuracy with LapTrack's on the same seeds.

    The attribution is DeLTA's rule: a cell of frame t scores the mean of the output over it;
    the seed becomes its best cell, and its two best cells if both score over 0.5 (a
    division). A seed is right when that set equals its ground-truth successors. ``limit``
    keeps only the first ``limit`` frame pairs of each range (a quick check; 0: all). With
    ``learned`` (a tracking model trained on frames 0-45, e.g. fold 0 of ``--train``), the
    learned tracker is scored on the same seeds.
    """
    if not DELTA_PY.exists():
        print(
            f"SKIPPED delta: {DELTA_PY} not found; create it with bash bench/peers/setup_delta.sh"
        )
        return
    work = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    train_frames, test_frames = range(1, 46), range(47, 92)
    if limit:
        train_frames, test_frames = train_frames[:limit], test_frames[:limit]
    write_delta_set(work / "train", images, gt, gt_tracks, train_frames, window, targets=True)
    samples = write_delta_set(
        work / "test", images, gt, gt_tracks, test_frames, window, targets=False
    )
    model = work / "delta_track.weights.h5"
    runner = [str(DELTA_PY), str(DELTA_RUNNER)]
    train_cmd = ["train", "--dir", str(work / "train"), "--model", str(model)]
    train = run_measured([*runner, *train_cmd, "--seconds", str(seconds)], echo=False)
    report = _delta_report(train.output)
    if train.returncode != 0 or report is None:
        print(f"DeLTA training failed:\n{train.output[-3000:]}")
        return
    print(
        f"DeLTA trained {report['steps']} steps ({report['samples_seen']} samples) in "
        f"{report['seconds']:.0f} s; last loss {report['last_loss']:.4g}"
    )
    out = work / "out"
    pred_cmd = ["predict", "--dir", str(work / "test"), "--model", str(model), "--out", str(out)]
    pred = run_measured([*runner, *pred_cmd], echo=False)
    report = _delta_report(pred.output)
    if pred.returncode != 0 or report is None:
        print(f"DeLTA prediction failed:\n{pred.output[-3000:]}")
        return
    by_id = {tr.id: tr for tr in gt_tracks}
    half = window // 2
    right = 0
    for name, t, seed in samples:
        prob = _png(out / f"{name}.png")
        seed_mask = (gt[t - 1] == seed).astype(np.uint8)
        y, x = (int(round(c)) for c in frame_detections(seed_mask).centroids[0])
        cur = np.pad(gt[t], half)[y : y + window, x : x + window]
        right += _attribute(prob / 255.0, cur) == _successors(gt, by_id, t, seed)
    detections = strip_identities(gt)
    lap_right = _seed_accuracy(gt, gt_tracks, test_frames, *link(detections))
    ours = ""
    if learned:
        mine = _seed_accuracy(
            gt, gt_tracks, test_frames, *track_with_model(images, detections, Path(learned))
        )
        ours = f", learned tracker {mine}/{len(samples)}"
    print(
        f"DeLTA predicted {report['samples']} seeds in {report['seconds']:.1f} s "
        f"({1000 * report['predict_s'] / max(report['samples'], 1):.1f} ms/seed in predict)"
    )
    frames = f"{test_frames[0] - 1}-{test_frames[-1]}"
    print(
        f"seed link accuracy on frames {frames}: DeLTA {right}/{len(samples)}, "
        f"LapTrack {lap_right}/{len(samples)}{ours}"
    )
    result(
        "tracking_delta_seed_accuracy_gowt1_01",
        lap_right / len(samples),
        max(right, 1) / len(samples),
        higher_is_better=True,
        unit="fraction",
        target=">=DeLTA",
    )
    shutil.rmtree(work, ignore_errors=True)


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path), dtype=np.float32)


def _attribute(prob: np.ndarray, cur: np.ndarray) -> set[int]:
    ids = [int(i) for i in np.unique(cur) if i]
    if not ids:
        return set()
    scores = {i: float(prob[cur == i].mean()) for i in ids}
    ranked = sorted(ids, key=scores.get, reverse=True)
    if scores[ranked[0]] < 0.05:
        return set()
    if len(ranked) > 1 and scores[ranked[1]] > 0.5:
        return {ranked[0], ranked[1]}
    return {ranked[0]}


def _seed_accuracy(
    gt: np.ndarray,
    gt_tracks: list[Track],
    frames: range,
    tracked: np.ndarray,
    tracks: list[Track],
) -> int:
    """Seeds of ``frames`` whose successors a result (``tracked``, ``tracks``: a linker run
    on stripped identities) gets right."""
    by_id, ours = {tr.id: tr for tr in gt_tracks}, {tr.id: tr for tr in tracks}
    right = 0
    for t in frames:
        for seed in (int(i) for i in np.unique(gt[t - 1]) if i):
            mine = int(np.bincount(tracked[t - 1][gt[t - 1] == seed]).argmax())
            successors = (
                {mine}
                if mine in np.unique(tracked[t])
                else {i for i, tr in ours.items() if tr.parent == mine and tr.begin == t}
            )
            found = {int(np.bincount(gt[t][tracked[t] == s]).argmax()) for s in successors}
            right += found == _successors(gt, by_id, t, seed)
    return right


def _delta_report(output: str) -> dict | None:
    lines = [line for line in output.splitlines() if line.startswith("DELTA ")]
    return json.loads(lines[-1][len("DELTA ") :]) if lines else None


# ----------------------------------------------------------------------------------- main


def synthetic_movie(seed: int = 0):
    """A synthetic time-lapse with divisions (``napari_cellseg.synth.timelapse``), or None."""
    try:
        from napari_cellseg.synth.timelapse import timelapse
    except ImportError:
        return None
    return timelapse("nuclei", n_frames=40, shape=(512, 512), n_cells=16, seed=seed)


def benchmark(name: str, gt: np.ndarray, gt_tracks: list[Track], repeats: int) -> Scored:
    """Ours and the reference on one sequence; prints the figures and the ``RESULT`` lines."""
    detections = strip_identities(gt)
    link(detections[:2])  # imports LapTrack: not timed
    ours = run_linker("LapTrack (ours, link)", link, detections, gt, gt_tracks, repeats)
    ref = run_linker(
        "LapTrack (documented dataframe use)",
        reference_laptrack,
        detections,
        gt,
        gt_tracks,
        repeats,
    )
    n_div = sum(t.parent > 0 for t in gt_tracks)
    print(
        f"{name}: {gt.shape[0]} frames of {gt.shape[1]}x{gt.shape[2]}, {ours.n_cells} cells, "
        f"{len(gt_tracks)} GT tracks ({n_div} with a parent)"
    )
    print(ours.line())
    print(ref.line())
    for measure in MEASURES:
        result(
            f"tracking_laptrack_{measure.lower()}_{name}",
            ours.scores[measure],
            ref.scores[measure],
            higher_is_better=True,
            unit=measure,
            target=">=ref",
        )
    result(
        f"tracking_laptrack_ms_per_cell_{name}",
        ours.ms_per_cell,
        ref.ms_per_cell,
        higher_is_better=False,
        unit="ms/cell",
        target="<=ref",
    )
    return ours


def main() -> None:
    """Run the benchmark parts the command line asks for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per linker")
    parser.add_argument("--synthetic", action="store_true", help="also a synthetic movie")
    parser.add_argument("--model", help="a tracking model: score the learned tracker with it")
    parser.add_argument("--train", action="store_true", help="cross-validate the learned tracker")
    parser.add_argument("--epochs", type=int, default=20, help="--n_epochs of each training")
    parser.add_argument(
        "--train-args", nargs=argparse.REMAINDER, default=[], help="more cellseg train flags"
    )
    parser.add_argument("--delta", type=float, metavar="SECONDS", help="DeLTA's training budget")
    parser.add_argument(
        "--delta-limit", type=int, default=0, help="DeLTA: only the first N frame pairs"
    )
    args = parser.parse_args()
    if args.synthetic:
        movie = synthetic_movie()
        if movie is None:
            print("SKIPPED synthetic: napari_cellseg.synth.timelapse not available")
        else:
            benchmark("synthetic", movie.labels, list(movie.tracks), args.repeats)
    if not SEQUENCE.is_dir():
        print(f"SKIPPED gowt1_01: {SEQUENCE} not found (the real data lives in ../shared/data)")
        return
    seq = read_sequence(SEQUENCE, images=bool(args.model or args.train or args.delta))
    gt, gt_tracks = seq.labels, list(seq.tracks)
    benchmark("gowt1_01", gt, gt_tracks, args.repeats)
    if args.model or args.train:
        learned_tracker(seq.images, strip_identities(gt), gt, gt_tracks, args)
    if args.delta:
        delta_peer(
            seq.images, gt, gt_tracks, args.delta, limit=args.delta_limit, learned=args.model
        )


if __name__ == "__main__":
    main()
