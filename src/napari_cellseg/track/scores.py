"""Cell Tracking Challenge scores (DET, SEG, TRA and the AOGM) through ``py-ctcmetrics``.

The measures (Matula et al. 2015, "Cell Tracking Accuracy Measurement Based on Comparison of
Acyclic Oriented Graphs"; Ulman et al. 2017):

- a result cell *matches* a ground-truth marker when it covers more than half of it;
- the AOGM is the weighted number of operations that turn the result graph into the
  ground-truth graph: NS (split a cell that matches several markers) x5, FN (add a missed
  cell) x10, FP (delete a spurious cell) x1, ED (delete a wrong edge) x1, EA (add a missing
  edge) x1.5, EC (change an edge between "same track" and "division") x1;
- ``TRA = 1 - min(AOGM, AOGM_0) / AOGM_0`` with ``AOGM_0`` the cost of building the ground
  truth from nothing (10 per cell, 1.5 per edge); ``DET`` the same on the cells only
  (NS, FN, FP over 10 per cell);
- ``SEG`` the mean IoU of each ground-truth segmentation (``SEG/man_segNNN.tif``) with its
  matching result cell (0 when none).

The counting itself is py-ctcmetrics' (``pip install napari-cellseg[track]``); here the folders
are checked first with :mod:`.ctc`, so that a bad folder gives a message that says what to
fix, and put into the layout py-ctcmetrics reads in a temporary folder.

Nothing here imports napari, Qt or torch.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import (
    GT_TABLE,
    RES_TABLE,
    Track,
    _as_stack,
    _frame_ids,
    _problems_message,
    _track_problems,
    read_tracks,
    relabel_consecutive,
    write_tracks,
)
from napari_cellseg.track.folders import (
    _GT_FILE,
    _RES_FILE,
    _SEG_FILE,
    _gt_tra,
    _numbered,
    frame_digits,
    write_result,
)

#: The measures :func:`ctc_scores` computes.
METRICS: tuple[str, ...] = ("DET", "SEG", "TRA")
#: The AOGM operations, in the order of their weights in :data:`AOGM_WEIGHTS`.
AOGM_WEIGHTS: dict[str, float] = {"NS": 5, "FN": 10, "FP": 1, "ED": 1, "EA": 1.5, "EC": 1}
_LARGEST_CTC_ID = int(np.iinfo(np.uint16).max)


class CTCScores(dict):
    """The scores of :func:`ctc_scores`: a ``dict`` of floats, with the measures skipped.

    Keys: ``DET``, ``SEG``, ``TRA`` (those asked for and computed), and with TRA ``AOGM``,
    ``AOGM_0`` and the operation counts ``AOGM_NS``, ``AOGM_FN``, ``AOGM_FP``, ``AOGM_ED``,
    ``AOGM_EA``, ``AOGM_EC``.

    Attributes
    ----------
    skipped : dict of str to str
        ``{measure: reason}`` for the measures asked for but not computed (SEG without a
        ``SEG`` folder).
    """

    def __init__(self, *args, skipped: Mapping[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: dict[str, str] = dict(skipped or {})


def _ctc_metrics():
    """``ctc_metrics.scripts.evaluate``, or a CellsegError saying what to install."""
    try:
        from ctc_metrics.scripts import evaluate
    except ImportError as exc:
        raise CellsegError(
            "CTC tracking scores need the py-ctcmetrics package: install napari-cellseg[track] "
            f"(pip install 'napari-cellseg[track]'); importing it failed: {exc}"
        ) from exc
    return evaluate


def _metrics(metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen = [m.upper() for m in metrics]
    unknown = [m for m in chosen if m not in METRICS]
    if unknown or not chosen:
        raise CellsegError(
            f"unknown tracking measure {', '.join(unknown) or '(none given)'}: choose among "
            f"{', '.join(METRICS)}"
        )
    return list(dict.fromkeys(chosen))


# --------------------------------------------------------------------------------------------
# folders


def _scan(files: Sequence[Path], folder: Path) -> tuple[list[np.ndarray], tuple[int, ...], int]:
    """The ids of each label file, the frame shape and the largest id (one frame in memory at
    a time)."""
    from napari_cellseg.io.images import read_mask

    ids_per_frame, shape, high = [], None, 0
    for path in files:
        frame = read_mask(path)
        if frame.ndim != 2:
            raise CellsegError(
                f"{path} holds an array of shape {frame.shape}; a CTC frame file holds one 2D "
                "label frame (Y, X)"
            )
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise CellsegError(
                f"{path} has shape {frame.shape} but {files[0].name} has {shape}; every "
                f"frame of {folder} must have the same size"
            )
        ids = _frame_ids(frame)
        ids_per_frame.append(ids)
        high = max(high, int(ids[-1]) if ids.size else 0)
    return ids_per_frame, shape, high


def _checked_folder(folder: Path, pattern, table: str, what: str) -> tuple:
    files = _numbered(folder, pattern, what)
    tracks = read_tracks(folder / table)
    ids_per_frame, shape, high = _scan(files, folder)
    problems = _track_problems(ids_per_frame, tracks, files)
    if problems:
        raise CellsegError(_problems_message(f"{folder} ({table} and {what} files)", problems))
    return files, tracks, shape, high


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.symlink(source.resolve(), target)
    except OSError:  # e.g. Windows without the symlink privilege
        shutil.copyfile(source, target)


def ctc_scores(
    res_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    *,
    metrics: Sequence[str] = METRICS,
) -> CTCScores:
    """The CTC scores of a result folder against its ground truth.

    Parameters
    ----------
    res_dir : str or os.PathLike
        The result folder (``01_RES``): ``maskNNN.tif`` and ``res_track.txt``.
    gt_dir : str or os.PathLike
        The ground truth (``01_GT``) holding ``TRA/`` (``man_trackNNN.tif``,
        ``man_track.txt``) and, for SEG, ``SEG/`` (``man_segNNN.tif``); its ``TRA`` folder is
        taken too (then without SEG).
    metrics : sequence of str
        Among ``"DET"``, ``"SEG"``, ``"TRA"``.

    Returns
    -------
    CTCScores
        A dict of floats (see :class:`CTCScores`); SEG is skipped, with the reason in
        ``skipped``, when the ground truth has no ``SEG`` folder.

    Raises
    ------
    CellsegError
        If py-ctcmetrics is not installed, a folder is missing or malformed (frames missing,
        track table wrong or disagreeing with the masks), or the result and the ground truth
        differ in number or size of frames.
    """
    metrics = _metrics(metrics)
    res_dir, gt_dir = Path(res_dir), Path(gt_dir)
    evaluate = _ctc_metrics()
    for option, folder in (("result", res_dir), ("ground truth", gt_dir)):
        if not folder.is_dir():
            raise CellsegError(f"{option} {folder}: no such folder")
    res_files, res_tracks, res_shape, res_high = _checked_folder(
        res_dir, _RES_FILE, RES_TABLE, "maskNNN.tif"
    )
    tra = _gt_tra(gt_dir)
    gt_files, gt_tracks, gt_shape, gt_high = _checked_folder(
        tra, _GT_FILE, GT_TABLE, "man_trackNNN.tif"
    )
    if len(res_files) != len(gt_files):
        raise CellsegError(
            f"the result {res_dir} has {len(res_files)} frames but the ground truth {tra} has "
            f"{len(gt_files)}; a result has one maskNNN.tif for every frame of the sequence"
        )
    if res_shape != gt_shape:
        raise CellsegError(
            f"{res_files[0]} has shape {res_shape} but {gt_files[0]} has {gt_shape}; the "
            "result masks must have the size of the sequence's frames"
        )
    skipped: dict[str, str] = {}
    seg_files: list[Path] = []
    if "SEG" in metrics:
        if tra == gt_dir:
            skipped["SEG"] = f"{gt_dir} is a TRA folder; give its 01_GT folder for SEG"
        else:
            seg_files = _seg_files(gt_dir / "SEG", len(gt_files))
            if not seg_files:
                skipped["SEG"] = f"no segmentation ground truth ({gt_dir / 'SEG'}/man_segNNN.tif)"
        metrics = [m for m in metrics if m not in skipped]
    if not metrics:
        return CTCScores(skipped=skipped)
    if not res_tracks:
        return CTCScores(_empty_result(gt_tracks, seg_files, metrics), skipped=skipped)
    with tempfile.TemporaryDirectory(prefix="cellseg-ctc-") as tmp:
        res, gt = Path(tmp) / "01_RES", Path(tmp) / "01_GT"
        digits = frame_digits(len(res_files))
        (gt / "TRA").mkdir(parents=True)
        for t, path in enumerate(gt_files):
            _link_or_copy(path, gt / "TRA" / f"man_track{t:0{digits}d}.tif")
        write_tracks(gt / "TRA" / GT_TABLE, gt_tracks)
        if seg_files:
            (gt / "SEG").mkdir()
            for path in seg_files:
                t = int(_SEG_FILE.fullmatch(path.name).group(1))
                _link_or_copy(path, gt / "SEG" / f"man_seg{t:0{digits}d}.tif")
        if res_high + gt_high + 1 > _LARGEST_CTC_ID:
            # py-ctcmetrics offsets the result ids by the largest ground-truth id in 16 bits
            _write_renumbered(res, res_files, res_tracks, gt_high)
        else:
            res.mkdir()
            for t, path in enumerate(res_files):
                _link_or_copy(path, res / f"mask{t:0{digits}d}.tif")
            write_tracks(res / RES_TABLE, res_tracks)
        return CTCScores(_evaluate(evaluate, res, gt, metrics), skipped=skipped)


def _seg_files(seg_dir: Path, n_frames: int) -> list[Path]:
    """The ``man_segNNN.tif`` files of a SEG folder (none when it is missing)."""
    if not seg_dir.is_dir():
        return []
    found: dict[int, Path] = {}
    for path in sorted(seg_dir.iterdir()):
        match = _SEG_FILE.fullmatch(path.name)
        if not match or not path.is_file():
            continue
        t = int(match.group(1))
        if t in found:
            raise CellsegError(
                f"{seg_dir}: {found[t].name} and {path.name} are both frame {t}; keep one of them"
            )
        if t >= n_frames:
            raise CellsegError(
                f"{path} is beyond the last frame {n_frames - 1} of the sequence; remove it"
            )
        found[t] = path
    return [found[t] for t in sorted(found)]


def _write_renumbered(
    res: Path, res_files: Sequence[Path], res_tracks: list[Track], gt_high: int
) -> None:
    from napari_cellseg.io.images import read_mask

    if len(res_tracks) + gt_high + 1 > _LARGEST_CTC_ID:
        raise CellsegError(
            f"the result has {len(res_tracks)} tracks and the ground truth ids up to {gt_high}; "
            f"py-ctcmetrics scores at most {_LARGEST_CTC_ID} ids of the two together"
        )
    labels = np.stack([read_mask(p) for p in res_files])
    labels, tracks = relabel_consecutive(labels, res_tracks)
    write_result(res, labels, tracks)


def _evaluate(evaluate, res: Path, gt: Path, metrics: list[str]) -> dict[str, float]:
    """py-ctcmetrics on a prepared pair of folders (its printing and warnings silenced)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp_tracks, ref_tracks, traj, segm, _, is_valid = evaluate.load_data(
            str(res), str(gt), trajectory_data=True, segmentation_data="SEG" in metrics, threads=1
        )
        results = evaluate.calculate_metrics(
            comp_tracks, ref_tracks, traj, segm, metrics=list(metrics), is_valid=is_valid
        )
    if not is_valid:  # checked before; py-ctcmetrics found something else
        raise CellsegError(
            f"py-ctcmetrics finds the result invalid although its masks and {RES_TABLE} agree; "
            "check that every track id is present in its frames"
        )
    keys = [m for m in METRICS if m in metrics]
    if "TRA" in metrics:
        keys += ["AOGM", "AOGM_0"] + [f"AOGM_{op}" for op in AOGM_WEIGHTS]
    return {key: float(results[key]) for key in keys}


def _empty_result(
    gt_tracks: Sequence[Track], seg_files: Sequence[Path], metrics: list[str]
) -> dict[str, float]:
    """The scores of a result without any cell: every ground-truth cell and edge is missing
    (py-ctcmetrics refuses an empty table)."""
    n_vertices = sum(t.end - t.begin + 1 for t in gt_tracks)
    n_edges = sum(t.end - t.begin for t in gt_tracks) + sum(1 for t in gt_tracks if t.parent)
    out: dict[str, float] = {}
    if "DET" in metrics:
        out["DET"] = 0.0
    if "SEG" in metrics:
        out["SEG"] = 0.0
    if "TRA" in metrics:
        aogm0 = AOGM_WEIGHTS["FN"] * n_vertices + AOGM_WEIGHTS["EA"] * n_edges
        counts = dict.fromkeys(AOGM_WEIGHTS, 0) | {"FN": n_vertices, "EA": n_edges}
        out |= {"TRA": 0.0, "AOGM": float(aogm0), "AOGM_0": float(aogm0)}
        out |= {f"AOGM_{op}": float(n) for op, n in counts.items()}
    return out


# --------------------------------------------------------------------------------------------
# arrays


def ctc_scores_arrays(
    res_labels: np.ndarray,
    res_tracks: Sequence[Track],
    gt_labels: np.ndarray,
    gt_tracks: Sequence[Track],
    *,
    gt_seg: np.ndarray | Mapping[int, np.ndarray] | None = None,
    metrics: Sequence[str] = METRICS,
) -> CTCScores:
    """The CTC scores of a result held in arrays against a ground truth held in arrays.

    Both are written in the CTC layout to a temporary folder and scored by :func:`ctc_scores`.

    Parameters
    ----------
    res_labels, gt_labels : numpy.ndarray
        Integer labels ``(T, Y, X)`` of the result and of the ground-truth markers (ids 1..65535).
    res_tracks, gt_tracks : sequence of Track
        Their track tables.
    gt_seg : numpy.ndarray or mapping of int to numpy.ndarray, optional
        Ground-truth segmentations for SEG: a ``(T, Y, X)`` stack (every frame annotated) or
        ``{frame: (Y, X) labels}`` for some frames. Without it SEG is skipped.
    metrics : sequence of str
        Among ``"DET"``, ``"SEG"``, ``"TRA"``.

    Returns
    -------
    CTCScores
        As :func:`ctc_scores`.

    Raises
    ------
    CellsegError
        If py-ctcmetrics is missing, or an array or table is invalid.
    """
    metrics = _metrics(metrics)
    _ctc_metrics()
    res_labels = _as_stack(res_labels, "result labels")
    gt_labels = _as_stack(gt_labels, "ground-truth labels")
    if res_labels.shape != gt_labels.shape:
        raise CellsegError(
            f"the result labels have shape {res_labels.shape} but the ground truth "
            f"{gt_labels.shape}; they must be the same (T, Y, X)"
        )
    seg = _seg_frames(gt_seg, gt_labels.shape)
    with tempfile.TemporaryDirectory(prefix="cellseg-ctc-") as tmp:
        res, gt = Path(tmp) / "01_RES", Path(tmp) / "01_GT"
        gt.mkdir()
        _write_gt(gt / "TRA", gt_labels, gt_tracks)
        if seg:
            from napari_cellseg.io.images import write_mask

            (gt / "SEG").mkdir()
            digits = frame_digits(len(gt_labels))
            for t, frame in seg.items():
                write_mask(gt / "SEG" / f"man_seg{t:0{digits}d}.tif", frame)
        write_result(res, res_labels, res_tracks)
        scores = ctc_scores(res, gt, metrics=metrics)
    if "SEG" in scores.skipped and not seg:
        scores.skipped["SEG"] = "no ground-truth segmentation given (gt_seg)"
    return scores


def _seg_frames(
    gt_seg: np.ndarray | Mapping[int, np.ndarray] | None, shape: tuple[int, ...]
) -> dict[int, np.ndarray]:
    if gt_seg is None:
        return {}
    if isinstance(gt_seg, Mapping):
        frames = {int(t): np.asarray(frame) for t, frame in gt_seg.items()}
    else:
        stack = _as_stack(gt_seg, "gt_seg")
        frames = dict(enumerate(stack))
    for t, frame in frames.items():
        if not 0 <= t < shape[0]:
            raise CellsegError(f"gt_seg: frame {t} is outside the sequence (0..{shape[0] - 1})")
        if frame.shape != shape[1:]:
            raise CellsegError(
                f"gt_seg: frame {t} has shape {frame.shape} but the frames are {shape[1:]}"
            )
    return dict(sorted(frames.items()))


def _write_gt(tra: Path, labels: np.ndarray, tracks: Sequence[Track]) -> None:
    """A ground truth in ``TRA`` layout (``man_trackNNN.tif`` + ``man_track.txt``)."""
    res = write_result(tra, labels, tracks)
    digits = frame_digits(len(labels))
    for t, path in enumerate(res[:-1]):
        path.rename(tra / f"man_track{t:0{digits}d}.tif")
    res[-1].rename(tra / GT_TABLE)
