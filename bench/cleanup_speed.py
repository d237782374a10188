"""Speed and peak memory of the label cleanup helpers against scikit-image and scipy.

``napari_cellseg.reconstruction.cleanup`` keeps its own ``remove_small``, ``renumber`` and
``fill_label_holes`` where they beat the library; this script is the evidence. Each is timed
against the library function that does the same job:

- ``remove_small`` vs ``skimage.morphology.remove_small_objects`` (on a label image);
- ``renumber`` vs ``skimage.segmentation.relabel_sequential``;
- ``fill_label_holes`` vs ``scipy.ndimage.binary_fill_holes`` per object over its
  ``find_objects`` box (what Cellpose and StarDist do), writing only into background.

on a 2048x2048 tissue of ~5,000 touching cells (``bench/qc_speed.py``'s image, ids spread
out) and on a 520x696 BBBC039-like image of ~100 synthetic nuclei, each with holes punched in
its cells. Times are medians of ``--repeats`` runs; peak memory is the largest numpy
allocation seen by ``tracemalloc`` in one run. ``ratio`` > 1: ours is faster (or leaner).

Run by hand: ``python bench/cleanup_speed.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential

from _common import median, result
from napari_cellseg import synth
from napari_cellseg.reconstruction import fill_label_holes, remove_small, renumber
from qc_speed import synthetic_labels

MIN_SIZE = 15


def with_holes(labels: np.ndarray, fraction: float = 0.01, seed: int = 0) -> np.ndarray:
    """Spread ids out (x3, so they are not consecutive) and punch 3x3 holes into cells.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(Y, X)`` labels.
    fraction : float
        Fraction of the pixels that become hole centres.
    seed : int
        Random seed.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels with holes; most holes are enclosed by one cell.
    """
    rng = np.random.default_rng(seed)
    out = labels.astype(np.int32) * 3
    centres = rng.random(labels.shape) < fraction
    inner = ndi.grey_erosion(out, size=5) == ndi.grey_dilation(out, size=5)
    out[ndi.binary_dilation(centres & inner & (out > 0), iterations=1)] = 0
    return out


def library_remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``remove_small`` done by scikit-image (which warns on images with a single label)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return remove_small_objects(labels, max_size=min_size - 1)


def library_renumber(labels: np.ndarray) -> np.ndarray:
    """``renumber`` done by scikit-image."""
    return relabel_sequential(labels)[0]


def library_fill_holes(labels: np.ndarray) -> np.ndarray:
    """Holes filled per object with scipy inside its box (Cellpose/StarDist), into background."""
    out = labels.copy()
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            filled = ndi.binary_fill_holes(labels[box] == i)
            out[box][filled & (labels[box] == 0)] = i
    return out


def measure(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, float, np.ndarray]:
    """Median seconds of ``repeats`` calls (after one to warm up), the peak traced MB of one
    call, and its result."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return median(times), peak, out


def compare(name: str, ours: Callable, theirs: Callable, repeats: int) -> None:
    """Time and trace both, say whether they agree, print the two ``RESULT`` lines."""
    t_ours, mb_ours, out_ours = measure(ours, repeats)
    t_lib, mb_lib, out_lib = measure(theirs, repeats)
    same = np.array_equal(out_ours, out_lib)
    print(
        f"{name}: ours {t_ours * 1e3:.2f} ms {mb_ours:.1f} MB, library {t_lib * 1e3:.2f} ms "
        f"{mb_lib:.1f} MB; same labels: {same}"
    )
    result(f"{name}_time", t_ours, t_lib, higher_is_better=False, unit="s", target=">=1")
    result(f"{name}_peak_mb", mb_ours, mb_lib, higher_is_better=False, unit="MB", target=">=1")


def main() -> None:
    """Compare the three helpers on both images and print the ``RESULT`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    images = {
        "2048x2048": with_holes(synthetic_labels()),
        "520x696": with_holes(synth.nuclei((520, 696), seed=0)[1]),
    }
    for size, labels in images.items():
        n = len(np.unique(labels)) - 1
        print(f"{size}: {n} labels, largest id {labels.max()}, {np.mean(labels == 0):.0%} bg")
        tag = size.replace("x", "_")
        compare(
            f"remove_small_{tag}",
            lambda labels=labels: remove_small(labels, MIN_SIZE),
            lambda labels=labels: library_remove_small(labels, MIN_SIZE),
            args.repeats,
        )
        compare(
            f"renumber_{tag}",
            lambda labels=labels: renumber(labels),
            lambda labels=labels: library_renumber(labels),
            args.repeats,
        )
        compare(
            f"fill_label_holes_{tag}",
            lambda labels=labels: fill_label_holes(labels),
            lambda labels=labels: library_fill_holes(labels),
            args.repeats,
        )


if __name__ == "__main__":
    main()
