"""Shared helpers for the benchmarks: data selection, measured subprocesses, result lines."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CELLSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
OMNIPOSE_PY = Path(os.environ.get("OMNIPOSE_VENV", "/tmp/omnipose-venv")) / "bin" / "python"
CELLPOSE_PY = Path(os.environ.get("CELLPOSE_VENV", "/tmp/cellpose-venv")) / "bin" / "python"
#: Models trained by bench/accuracy.py, reused by bench/inference_speed.py.
BENCH_CACHE = Path(
    os.environ.get("CELLSEG_BENCH_CACHE", Path.home() / ".cache" / "napari-cellseg-bench")
)


def require(path: Path, hint: str) -> Path:
    """Exit with a clear message when a benchmark input is missing."""
    if not path.exists():
        sys.exit(f"missing {path}: {hint}")
    return path


def bbbc039_pairs(split: str = "train") -> list[tuple[Path, Path]]:
    """All ``(image, mask)`` pairs of a BBBC039 split, sorted by name.

    Parameters
    ----------
    split : str
        ``"train"`` or ``"val"``.

    Returns
    -------
    list of tuple of Path
        ``(<base>.tif, <base>_masks.tif)`` pairs.
    """
    folder = require(DATA / "bbbc039" / split, "the real data lives in ../shared/data")
    return [
        (mask.with_name(mask.name.replace("_masks", "")), mask)
        for mask in sorted(folder.glob("*_masks.tif"))
    ]


def dense_bbbc039(split: str = "train", min_cells: int = 100) -> list[tuple[Path, Path]]:
    """Image/mask pairs of BBBC039 with at least ``min_cells`` nuclei (Omnipose trains on these)."""
    import numpy as np
    import tifffile

    return [
        (image, mask)
        for image, mask in bbbc039_pairs(split)
        if len(np.unique(tifffile.imread(mask))) - 1 >= min_cells
    ]


def link_folder(files: Iterable[Path], folder: Path) -> Path:
    """Make ``folder`` hold symbolic links to ``files`` (same names), and nothing else.

    Peer tools write their models and outputs beside their inputs; a folder of links keeps
    them out of the shared data, and selects a subset of images without copying any.

    Parameters
    ----------
    files : iterable of Path
        Files to link to.
    folder : Path
        Folder to create (it must not exist, or be empty).

    Returns
    -------
    Path
        The folder, absolute (Omnipose and Cellpose want absolute paths).
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty")
    for f in files:
        (folder / f.name).symlink_to(Path(f).resolve())
    return folder


def pixel_count(images: Sequence[Path]) -> int:
    """Total number of pixels (height x width) of 2D images, read from their headers."""
    import tifffile

    total = 0
    for path in images:
        with tifffile.TiffFile(path) as tif:
            shape = tif.series[0].shape
        total += int(shape[-2]) * int(shape[-1])
    return total


def evaluate_folder(pred: Path, gt: Path, pred_filter: str = "_masks") -> dict:
    """Score a folder of predicted masks with ``cellseg evaluate`` (the same AP for every tool).

    Parameters
    ----------
    pred : Path
        Folder of ``<base><pred_filter>.tif`` label files.
    gt : Path
        Folder of ``<base>_masks.tif`` ground-truth files.
    pred_filter : str
        Name suffix of the predicted files: ``_masks`` for ours, ``_cp_masks`` for Omnipose
        and Cellpose.

    Returns
    -------
    dict
        The ``summary`` of ``cellseg evaluate --json``: means over images of ``ap_50``,
        ``ap_75`` (AP = TP/(TP+FP+FN)) and the other scores, ``n_images`` and counts.
    """
    cmd = [sys.executable, "-m", "napari_cellseg.cli", "evaluate", "--pred", str(pred)]
    cmd += ["--gt", str(gt), "--pred_filter", pred_filter, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"cellseg evaluate failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout)["summary"]


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


@dataclass(frozen=True)
class Measured:
    """A finished subprocess and what was measured about it.

    Attributes
    ----------
    returncode : int
        Exit status (negative: killed by that signal).
    output : str
        Standard output and standard error, interleaved.
    seconds : float
        Wall-clock time from the start to the exit.
    peak_rss_gb : float
        Peak resident memory in GB: the larger of the highest sum over the process tree (sampled
        every 0.2 s) and the kernel's exact peak of the largest single process (``wait4``).
    stopped : bool
        Whether the run was ended early by ``timeout`` or ``stop_on``.
    peak_process_gb : float
        Peak resident memory in GB of the largest single process of the tree (a Dask worker,
        a torchrun rank, or the command itself), sampled the same way.
    """

    returncode: int
    output: str
    seconds: float
    peak_rss_gb: float
    stopped: bool
    peak_process_gb: float = 0.0


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict | None = None,
    timeout: float | None = None,
    max_rss_gb: float | None = None,
    stop_on: Callable[[str, float], bool] | None = None,
    log: Path | None = None,
    echo: bool = False,
) -> Measured:
    """Run a command in its own process group; measure wall time and peak memory.

    Parameters
    ----------
    cmd : sequence of str
        The command.
    env : dict, optional
        Variables added to the environment (``PYTHONUNBUFFERED=1`` is always set, so that
        output lines arrive when they are printed).
    timeout : float, optional
        Seconds after which the whole process group is killed (``stopped`` is then true).
    max_rss_gb : float, optional
        Resident memory of the process tree (GB) above which it is killed the same way.
    stop_on : callable, optional
        Called with each output line and the seconds since the start; returning ``True``
        kills the process group (e.g. after a timing run has printed enough epochs).
    log : Path, optional
        File that receives the output as it comes.
    echo : bool
        Also print each output line, indented.

    Returns
    -------
    Measured
        Exit status, output, wall time, peak memory and whether it was stopped.
    """
    import psutil

    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},  # lines as they come
        start_new_session=True,
    )
    lines: list[str] = []
    stop_now = threading.Event()
    sink = open(log, "w", encoding="utf-8") if log else None  # noqa: SIM115 (closed below)

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if sink:
                sink.write(line)
                sink.flush()
            if echo:
                print("    | " + line.rstrip(), flush=True)
            if stop_on is not None and stop_on(line, time.monotonic() - start):
                stop_now.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    peak, single, stopped = 0.0, 0.0, False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            tree = [root, *root.children(recursive=True)]
            sizes = [p.memory_info().rss for p in tree if p.is_running()]
            peak, single = max(peak, sum(sizes)), max(single, *sizes, 0)
        except psutil.Error:
            pass
        late = timeout is not None and time.monotonic() - start > timeout
        big = max_rss_gb is not None and peak > max_rss_gb * 1e9
        if (late or big or stop_now.is_set()) and not stopped:
            stopped = True
            os.killpg(proc.pid, signal.SIGKILL)  # the group this call started
        time.sleep(0.2)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=5)
    if sink:
        sink.close()
    single = max(single, usage.ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
    peak = max(peak, single)
    return Measured(proc.returncode, "".join(lines), seconds, peak / 1e9, stopped, single / 1e9)


def run_with_peak_rss(
    cmd: list[str], *, env: dict | None = None, timeout: float | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command; return it and the peak resident memory (GB) of its process tree."""
    m = run_measured(cmd, env=env, timeout=timeout)
    return subprocess.CompletedProcess(cmd, m.returncode, m.output, ""), m.peak_rss_gb
