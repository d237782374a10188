"""``cellseg qc``: check the annotations of a training folder, optionally write a fixed copy.

Checks, by severity (* = fixed by --fix):
  blocking  unreadable, float_mask*, shape_mismatch, too_many_labels, semantic_mask*,
            split_label*
  warning   empty_mask, gap*, fragment*
  info      border (only with --border), blobs_label, non_consecutive
Nuclei that do not touch often have real thin gaps between them: --max_gap 0 turns the gap
check off. --fix copies the images and writes fixed masks with the same names to OUT.

Exit status: 0 when no mask has a blocking problem, 1 when at least one has (the status
describes DIR as given, also with --fix), 2 for a usage error (bad folder, bad --fix target).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.qc.checks import DEFAULT_MAX_GAP, DEFAULT_MIN_SIZE
from napari_cellseg.qc.report import CHECKS, SEVERITY, QCReport

_NAME_WIDTH = 48


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg qc``.

    Parameters
    ----------
    subparsers
        The ``add_subparsers()`` object of the ``cellseg`` parser.

    Returns
    -------
    argparse.ArgumentParser
        The ``qc`` parser.
    """
    p = subparsers.add_parser(
        "qc",
        help="check annotations (binary masks, split labels, gaps, ...) and optionally fix them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", help="dataset folder (relative or absolute)")
    p.add_argument("--json", action="store_true", help="print a machine-readable report")
    p.add_argument(
        "--fix",
        metavar="OUT",
        help="write a copy of the dataset with every fixable problem fixed to the new folder OUT "
        "(outside DIR; the originals are never touched)",
    )
    p.add_argument(
        "--convention",
        default="auto",
        choices=("auto", "omnipose", "delta", "clb", "ctc"),
        help="folder layout (default: %(default)s)",
    )
    p.add_argument("--img_filter", default="", help="Omnipose: suffix of image file stems")
    p.add_argument(
        "--mask_filter", default="_masks", help="Omnipose: suffix of mask stems (%(default)s)"
    )
    p.add_argument(
        "--look_one_level_down", action="store_true", help="Omnipose: also read subfolders"
    )
    p.add_argument(
        "--nchan",
        "--channels",
        type=int,
        default=TrainConfig.nchan,
        help="channels per image, as for `cellseg train`: with 1 a short (k, Y, X) image is k "
        "frames, each needing its own mask frame (default: %(default)s)",
    )
    p.add_argument(
        "--channel_axis",
        type=int,
        default=None,
        help="axis of the images that holds the channels, as for `cellseg train`",
    )
    p.add_argument(
        "--links",
        action="store_true",
        help="use <base>_links.txt files: linked labels are pieces of one object",
    )
    p.add_argument(
        "--blobs",
        default="auto",
        choices=("auto", "yes", "no"),
        help="whether label 1 marks CLB 'blobs' (regions to ignore); auto: when label 1 is the "
        "only label in several parts (default: %(default)s)",
    )
    p.add_argument(
        "--border",
        action="store_true",
        help="also list the labels that touch the image border (info: cells cut by the field "
        "of view, normal in most data)",
    )
    p.add_argument(
        "--min_size",
        type=int,
        default=DEFAULT_MIN_SIZE,
        help="parts smaller than this (px) are fragments (default: %(default)s)",
    )
    p.add_argument(
        "--max_gap",
        type=int,
        default=DEFAULT_MAX_GAP,
        help="widest background seam (px) between two cells reported as a gap; 0 turns the "
        "check off (default: %(default)s)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``cellseg qc``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of :func:`add_parser`.

    Returns
    -------
    int
        0 when no blocking problem was found, 1 otherwise.

    Raises
    ------
    CellsegError
        For a missing or unusable folder, or a ``--fix`` target that is not a new folder.
    """
    from napari_cellseg.io.datasets import discover
    from napari_cellseg.qc.dataset import fix_dataset, qc_dataset

    if args.min_size < 0 or args.max_gap < 0:
        raise CellsegError("--min_size and --max_gap must be >= 0")
    layout = {
        "img_filter": args.img_filter,
        "mask_filter": args.mask_filter,
        "look_one_level_down": args.look_one_level_down,
    }
    dataset = discover(args.dir, args.convention, **layout)
    params = {
        "links": args.links,
        "min_size": args.min_size,
        "max_gap": args.max_gap,
        "blobs": {"auto": None, "yes": True, "no": False}[args.blobs],
    }
    checks = {"nchan": args.nchan, "channel_axis": args.channel_axis, "border": args.border}
    results = qc_dataset(dataset, **checks, **params)
    reports = [report for _, report in results]
    blocking = sum(r.blocking for r in reports)
    fixed = None
    if args.fix:
        summary = fix_dataset(dataset, args.fix, **params)
        after = qc_dataset(discover(summary.out, dataset.convention, **layout), **checks, **params)
        fixed = {
            "out": str(summary.out),
            "files_written": len(summary.written),
            "masks_changed": summary.changed,
            "masks_copied_unfixed": summary.unfixable,
            "notes": summary.notes,
            "blocking_after": sum(r.blocking for _, r in after),
            "counts_after": _totals(r for _, r in after),
        }
    if args.json:
        print(json.dumps(_json(dataset, results, fixed), indent=2))
    else:
        _print_table(dataset, results)
        if fixed is not None:
            _print_fixed(fixed)
    return 1 if blocking else 0


def _totals(reports) -> dict[str, int]:
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.counts())
    return {check: total[check] for check in CHECKS if total[check]}


def _json(dataset, results, fixed: dict | None) -> dict:
    reports = [r for _, r in results]
    return {
        "root": str(dataset.root),
        "convention": dataset.convention,
        "warnings": list(dataset.warnings),
        "n_masks": len(reports),
        "n_blocking": sum(r.blocking for r in reports),
        "blocking": any(r.blocking for r in reports),
        "counts": _totals(reports),
        "severity": {check: SEVERITY[check] for check in CHECKS},
        "masks": [
            {
                "name": report.source,
                "image": str(sample.image),
                "mask": str(sample.mask),
                "page": sample.page,
                **report.to_dict(),
            }
            for sample, report in results
        ],
        "fixed": fixed,
    }


def _print_table(dataset, results) -> None:
    for warning in dataset.warnings:
        print(f"note: {warning}")
    reports = [r for _, r in results]
    width = min(_NAME_WIDTH, max([len(r.source) for r in reports] + [4]))
    print(f"{'mask':<{width}}  {'labels':>6}  {'block':>5}  {'warn':>4}  {'info':>4}  problems")
    for report in reports:
        severities = Counter(p.severity for p in report.problems)
        found = ", ".join(f"{check} x{n}" for check, n in report.counts().items())
        print(
            f"{_shorten(report.source, width):<{width}}  {report.n_labels:>6}  "
            f"{severities['blocking']:>5}  {severities['warning']:>4}  {severities['info']:>4}"
            f"  {found or '-'}"
        )
    for report in reports:
        if report.blocking:
            print()
            print(_blocking_details(report))
    _print_summary(dataset, reports)


def _blocking_details(report: QCReport) -> str:
    lines = [f"{report.source}:"]
    lines += [
        f"  [blocking] {p.check}: {p.message}" for p in report.problems if p.severity == "blocking"
    ]
    return "\n".join(lines)


def _print_summary(dataset, reports: list[QCReport]) -> None:
    totals = _totals(reports)
    by_severity: Counter[str] = Counter()
    for check, n in totals.items():
        by_severity[SEVERITY[check]] += n
    blocking = sum(r.blocking for r in reports)
    print()
    print(
        f"{len(reports)} masks checked in {dataset.root} ({dataset.convention}): "
        f"{blocking} with blocking problems; {by_severity['warning']} warnings, "
        f"{by_severity['info']} info"
    )
    for severity in ("blocking", "warning", "info"):
        parts = [f"{c} {n}" for c, n in totals.items() if SEVERITY[c] == severity]
        if parts:
            print(f"  {severity}: {', '.join(parts)}")
    print(
        "FAILED: fix the blocking problems before training (exit status 1)"
        if blocking
        else "OK: no blocking problem"
    )


def _print_fixed(fixed: dict) -> None:
    print()
    print(
        f"fixed copy written to {fixed['out']}: {fixed['files_written']} files, "
        f"{len(fixed['masks_changed'])} masks changed"
    )
    if fixed["masks_copied_unfixed"]:
        print(
            f"  copied unchanged (not readable as labels): "
            f"{', '.join(fixed['masks_copied_unfixed'])}"
        )
    for note in fixed["notes"]:
        print(f"  note: {note}")
    remaining = ", ".join(f"{c} {n}" for c, n in fixed["counts_after"].items()) or "nothing"
    print(
        f"  the copy now has {fixed['blocking_after']} masks with blocking problems ({remaining})"
    )


def _shorten(name: str, width: int) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]
