"""Shared helpers for the benchmarks: data selection, peak memory, result lines."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CELLSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
OMNIPOSE_PY = Path(os.environ.get("OMNIPOSE_VENV", "/tmp/omnipose-venv")) / "bin" / "python"


def require(path: Path, hint: str) -> Path:
    """Exit with a clear message when a benchmark input is missing."""
    if not path.exists():
        sys.exit(f"missing {path}: {hint}")
    return path


def dense_bbbc039(split: str = "train", min_cells: int = 100) -> list[tuple[Path, Path]]:
    """Image/mask pairs of BBBC039 with at least ``min_cells`` nuclei (Omnipose trains on these)."""
    import numpy as np
    import tifffile

    folder = require(DATA / "bbbc039" / split, "the real data lives in ../shared/data")
    pairs = []
    for mask in sorted(folder.glob("*_masks.tif")):
        image = mask.with_name(mask.name.replace("_masks", ""))
        if len(np.unique(tifffile.imread(mask))) - 1 >= min_cells:
            pairs.append((image, mask))
    return pairs


def median(values) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def result(
    name: str, ours: float, ref: float, *, higher_is_better: bool, unit: str, target: str
) -> str:
    """The ``RESULT`` line every benchmark ends with (ratio > 1 is better)."""
    ratio = ours / ref if higher_is_better else ref / ours
    line = (
        f"RESULT {name} ours={ours:.4g} ref={ref:.4g} ratio={ratio:.3g} unit={unit} target={target}"
    )
    print(line, flush=True)
    return line


def run_with_peak_rss(
    cmd: list[str], *, env: dict | None = None, timeout: float | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command; return it and the peak resident memory (GB) of its process tree."""
    import psutil

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peak = 0.0
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    start = time.monotonic()
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if timeout and time.monotonic() - start > timeout:
            proc.kill()
            break
        time.sleep(0.2)
    proc.wait()
    reader.join(timeout=5)
    done = subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "")
    return done, peak / 1e9
