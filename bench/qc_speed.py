"""Speed of the annotation QC: all checks on a 2048x2048 label image with ~5,000 cells.

There is no peer implementation of these checks to time against, so the reference is the
target itself: 1 s for all checks (``ref=1.0``; ``ratio = 1.0 / ours``, > 1 is better).

Run by hand: ``python bench/qc_speed.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi

from _common import median, result
from napari_cellseg.qc import run_qc

SIZE = 2048
TARGET_S = 1.0


def synthetic_labels(size: int = SIZE, spacing: int = 29, seed: int = 0) -> np.ndarray:
    """Build a dense tissue of touching cells, with some thin gaps and one split label.

    Parameters
    ----------
    size : int
        Image side in pixels.
    spacing : int
        Mean distance between cell centres; 29 px gives ~5,000 cells in 2048x2048.
    seed : int
        Random seed.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint16 labels.
    """
    rng = np.random.default_rng(seed)
    centres = np.arange(spacing // 2, size, spacing)
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    jitter = rng.uniform(-spacing / 3, spacing / 3, size=(2, *yy.shape))
    ys = np.clip(np.round(yy + jitter[0]), 0, size - 1).astype(int).ravel()
    xs = np.clip(np.round(xx + jitter[1]), 0, size - 1).astype(int).ravel()
    seeds = np.zeros((size, size), dtype=np.uint16)
    seeds[ys, xs] = np.arange(1, len(ys) + 1)
    # Voronoi cells of the seeds (touching), cut off 0.6 spacings from their seed
    dist, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iy, ix]
    labels[dist > 0.6 * spacing] = 0
    # thin gaps: shrink 5% of the cells by 2 px wherever they touch another cell
    shrink = np.zeros(len(ys) + 1, dtype=bool)
    shrink[rng.choice(np.arange(1, len(ys) + 1), size=len(ys) // 20, replace=False)] = True
    edge = (ndi.grey_dilation(labels, size=3) != ndi.grey_erosion(labels, size=3)) & shrink[labels]
    labels[ndi.binary_dilation(edge) & shrink[labels]] = 0
    # one split label: a far-away cell takes the id of cell 77
    labels[labels == len(ys) // 2] = 77
    return labels


def main() -> None:
    """Time ``run_qc`` on the synthetic image and print the ``RESULT`` line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    labels = synthetic_labels()
    n_cells = len(np.unique(labels)) - 1
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        report = run_qc(labels, labels.shape)
        times.append(time.perf_counter() - start)
    ours = median(times)
    print(f"{SIZE}x{SIZE} labels, {n_cells} cells: {report.counts()}")
    print(f"run_qc times (s): {', '.join(f'{t:.3f}' for t in times)}; median {ours:.3f} s")
    print("reference: the 1 s target (no peer tool implements these checks)")
    result(
        "qc_2048_5000", ours, TARGET_S, higher_is_better=False, unit="s", target=f"<{TARGET_S:g}"
    )


if __name__ == "__main__":
    main()
