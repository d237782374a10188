"""QC of whole datasets (:func:`qc_dataset`) and fixed copies of them (:func:`fix_dataset`).

File problems become blocking :class:`~napari_cellseg.qc.report.Problem` s of the sample
(``float_mask``, ``unreadable``) instead of stopping the run, so one bad file does not hide the
others. A mask stack (``(Z, Y, X)`` in one file) is checked frame by frame: one report per
frame, named ``<sample>[z]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets import Dataset, Sample, load_mask
from napari_cellseg.io.images import read_image, read_shape, read_tiff_page, write_mask
from napari_cellseg.io.links import read_links, write_links
from napari_cellseg.qc.checks import (
    DEFAULT_MAX_GAP,
    DEFAULT_MIN_SIZE,
    PNG_MAX_LABEL,
    run_qc,
    shape_problems,
)
from napari_cellseg.qc.checks.analysis import float_is_whole
from napari_cellseg.qc.fixes import fix_all
from napari_cellseg.qc.report import CHECKS, SEVERITY, Problem, QCReport


@dataclass
class FixSummary:
    """What :func:`fix_dataset` wrote.

    Parameters
    ----------
    out : pathlib.Path
        The new dataset folder.
    written : list of pathlib.Path
        Every file written (copied images, fixed masks, links files).
    changed : list of str
        Sample names whose labels the fixes changed.
    unfixable : list of str
        Sample names whose mask could not be read as labels; copied unchanged.
    notes : list of str
        Anything the user should know about the copy (e.g. weight maps left out).
    """

    out: Path
    written: list[Path] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unfixable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def qc_dataset(
    dataset: Dataset,
    *,
    links: bool = False,
    min_size: int = DEFAULT_MIN_SIZE,
    max_gap: int = DEFAULT_MAX_GAP,
    blobs: bool | None = None,
    border: bool = False,
    nchan: int | None = 1,
    channel_axis: int | None = None,
) -> list[tuple[Sample, QCReport]]:
    """Check every mask of a dataset.

    Parameters
    ----------
    dataset : Dataset
        From :func:`napari_cellseg.io.datasets.discover`; samples without a mask are skipped.
    links : bool
        Use the samples' ``_links.txt`` files (as Omnipose's ``--links``).
    min_size, max_gap, blobs, border
        As for :func:`~napari_cellseg.qc.checks.run_qc` (``border``: also list the labels
        that touch the image border; off by default).
    nchan, channel_axis
        How training will split the images into frames (``--nchan``, ``--channel_axis``;
        training's defaults): each mask must fit its image by
        :func:`~napari_cellseg.io.datasets.pair_problem`, as training requires.

    Returns
    -------
    list of (Sample, QCReport)
        One report per sample (per frame for mask stacks), in dataset order.
    """
    params = {"min_size": min_size, "max_gap": max_gap, "blobs": blobs, "border": border}
    layout = {"channel_axis": channel_axis, "nchan": nchan}
    results = []
    for sample in dataset.samples:
        if sample.mask is None:
            continue
        try:
            image_shape = read_shape(sample.image, sample.page)
        except CellsegError as err:
            results.append((sample, _file_report(sample, "unreadable", str(err))))
            continue
        labels, report = _read_labels(sample)
        if labels is None:
            results.append((sample, _with_shape(report, sample, image_shape, layout)))
            continue
        try:
            sample_links = _read_sample_links(sample, labels) if links else set()
        except CellsegError as err:
            results.append((sample, _file_report(sample, "unreadable", str(err))))
            continue
        max_label = PNG_MAX_LABEL if sample.mask.suffix.lower() == ".png" else None
        mismatch = shape_problems(labels.shape, image_shape, **layout)
        for name, frame in _frames(sample, labels):
            report = run_qc(frame, None, sample_links, max_label=max_label, source=name, **params)
            if mismatch:
                problems = sorted(report.problems + mismatch, key=lambda p: CHECKS.index(p.check))
                report = QCReport(problems, report.shape, report.n_labels, report.source)
            results.append((sample, report))
    return results


def fix_dataset(
    dataset: Dataset,
    out: str | os.PathLike,
    *,
    links: bool = False,
    min_size: int = DEFAULT_MIN_SIZE,
    max_gap: int = DEFAULT_MAX_GAP,
    blobs: bool | None = None,
) -> FixSummary:
    """Write a fixed copy of a dataset to a new folder; the originals are never touched.

    Images are copied byte for byte; each mask is written with every fix of
    :func:`~napari_cellseg.qc.fixes.fix_all` applied, under the same relative path and name.
    With ``links``, links files are updated with the labels (links to ids that no longer exist
    are dropped); otherwise they are copied unchanged. Masks that cannot be read as labels are
    copied unchanged. Weight maps are not copied: they depend on the masks, so make them again.

    Parameters
    ----------
    dataset : Dataset
        From :func:`napari_cellseg.io.datasets.discover`.
    out : str or os.PathLike
        New folder: must not exist or be empty, and must not be inside the dataset.
    links : bool
        Use and update the samples' links files.
    min_size, max_gap, blobs
        As for :func:`~napari_cellseg.qc.checks.run_qc`.

    Returns
    -------
    FixSummary
        The files written and the samples changed.

    Raises
    ------
    CellsegError
        If ``out`` is the dataset folder, inside it, or a non-empty folder or a file.
    """
    base = _common_base(dataset)
    out = _check_out(Path(out), dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    # everything goes to a hidden staging folder that becomes OUT only once complete
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        summary = _fix_into(dataset, base, staging, links, min_size, max_gap, blobs)
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.out = out
    summary.written = [out / path.relative_to(staging) for path in summary.written]
    return summary


def _fix_into(
    dataset: Dataset,
    base: Path,
    out: Path,
    links: bool,
    min_size: int,
    max_gap: int,
    blobs: bool | None,
) -> FixSummary:
    summary = FixSummary(out)
    params = {"min_size": min_size, "max_gap": max_gap, "blobs": blobs}
    by_mask: dict[Path, list[Sample]] = {}
    for sample in dataset.samples:
        _copy_once(sample.image, base, out, summary)
        if sample.mask is not None:
            by_mask.setdefault(sample.mask, []).append(sample)
        if sample.links is not None and not links:
            _copy_once(sample.links, base, out, summary)
        if sample.weights is not None and not summary.notes:
            summary.notes.append(
                "weight maps (wei/) were not copied: they depend on the masks, so make them "
                "again from the fixed masks (cellseg make-weights)"
            )
    for mask, samples in by_mask.items():
        samples.sort(key=lambda s: s.page or 0)
        _fix_mask_file(mask, samples, base, out, summary, links, params)
    return summary


# ---------------------------------------------------------------------- reading


def _read_labels(sample: Sample) -> tuple[np.ndarray | None, QCReport | None]:
    """Read a sample's labels; a float mask of whole numbers is returned raw (run_qc flags it).

    Returns ``(labels, None)``, or ``(None, report)`` with the blocking file problem.
    """
    try:
        return load_mask(sample), None
    except CellsegError as err:
        message = str(err)
    try:
        raw = (
            read_image(sample.mask)
            if sample.page is None
            else read_tiff_page(sample.mask, sample.page)
        )
    except CellsegError:
        raw = None
    if raw is not None and raw.dtype.kind == "f" and raw.ndim in (2, 3) and float_is_whole(raw):
        return raw, None
    check = "float_mask" if raw is not None and raw.dtype.kind == "f" else "unreadable"
    return None, _file_report(sample, check, message)


def _read_sample_links(sample: Sample, labels: np.ndarray) -> set[tuple[int, int]]:
    if sample.links is None:
        return set()
    return read_links(sample.links, labels=labels)


def _frames(sample: Sample, labels: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, 2D labels)`` per frame of the mask."""
    if labels.ndim == 2:
        yield sample.name, labels
        return
    for z, frame in enumerate(labels):
        yield f"{sample.name}[{z}]", frame


def _file_report(sample: Sample, check: str, message: str) -> QCReport:
    problem = Problem(check=check, severity=SEVERITY[check], message=message)
    return QCReport([problem], (), 0, sample.name)


def _with_shape(
    report: QCReport, sample: Sample, image_shape: tuple[int, ...], layout: dict
) -> QCReport:
    """Add the mask's shape (from its header) to a file report, and a shape mismatch if any."""
    try:
        shape = tuple(read_shape(sample.mask, sample.page))
    except CellsegError:
        return report
    problems = report.problems + shape_problems(shape, image_shape, **layout)
    return QCReport(problems, shape, 0, report.source)


# ---------------------------------------------------------------------- writing


def _source_folders(dataset: Dataset) -> set[Path]:
    """The dataset folder and every folder that holds one of its files."""
    return {dataset.root} | {
        p.parent for s in dataset.samples for p in (s.image, s.mask, s.links) if p is not None
    }


def _common_base(dataset: Dataset) -> Path:
    """The folder that holds every file of the dataset (its root, or above for CTC ``01``)."""
    return Path(os.path.commonpath([str(p) for p in _source_folders(dataset)]))


def _check_out(out: Path, dataset: Dataset) -> Path:
    out = out.expanduser().resolve()
    for folder in sorted(_source_folders(dataset)):
        if out == folder or folder in out.parents:
            raise CellsegError(
                f"--fix {out}: the fixed copy must go to a new folder outside the dataset "
                f"({folder} holds its files), so the originals stay as they are"
            )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CellsegError(
            f"--fix {out}: the folder exists and is not empty (or is a file); give a new or "
            "empty folder so nothing is overwritten"
        )
    return out


def _copy_once(path: Path, base: Path, out: Path, summary: FixSummary) -> None:
    target = out / path.relative_to(base)
    if target in summary.written:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    summary.written.append(target)


def _fix_mask_file(
    mask: Path,
    samples: list[Sample],
    base: Path,
    out: Path,
    summary: FixSummary,
    links: bool,
    params: dict,
) -> None:
    """Fix every sample (page) stored in one mask file and write the file once."""
    fixed_frames = []
    for sample in samples:
        labels, _ = _read_labels(sample)
        sample_links: set[tuple[int, int]] = set()
        if links and labels is not None:
            try:
                sample_links = _read_sample_links(sample, labels)
            except CellsegError:
                labels = None  # links naming missing labels: leave mask and links as they are
        if labels is None:
            summary.unfixable.append(sample.name)
            for path in (mask, sample.links if links else None):
                if path is not None:
                    _copy_once(path, base, out, summary)
            return
        frames = labels if labels.ndim == 3 else labels[None]
        kept: set[tuple[int, int]] = set()
        fixed = []
        for frame in frames:
            new, frame_links = fix_all(frame, links=sample_links, **params)
            fixed.append(new)
            kept |= frame_links
        stacked = np.stack(fixed)
        if stacked.dtype != frames.dtype or not np.array_equal(stacked, frames):
            summary.changed.append(sample.name)
        fixed_frames.append(stacked if labels.ndim == 3 else stacked[0])
        if links and sample.links is not None:
            target = out / sample.links.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            summary.written.append(write_links(target, kept))
    target = out / mask.relative_to(base)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = fixed_frames[0] if samples[0].page is None else np.stack(fixed_frames)
    summary.written.append(write_mask(target, data))
