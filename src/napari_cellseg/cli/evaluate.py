"""``cellseg evaluate``: score predicted label files against ground truth.

Files are paired by base name: ``<base><pred_filter>.<ext>`` in ``--pred`` with
``<base><gt_filter>.<ext>`` in ``--gt`` (``.tif``, ``.tiff`` or ``.png``). A stack of label
matrices is scored frame by frame, one row per frame.

With ``--tracking RES_DIR`` instead of ``--pred``, a Cell Tracking Challenge result folder
(``maskNNN.tif`` + ``res_track.txt``) is scored against ``--gt`` (the ``01_GT`` folder with
``TRA/`` and ``SEG/``): DET, SEG and TRA with the AOGM (:mod:`napari_cellseg.track.scores`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from napari_cellseg.errors import CellsegError

#: Columns of the printed table: (row key, header, format).
_TABLE = (
    ("n_gt", "n_gt", "{:>6d}"),
    ("n_pred", "n_pred", "{:>6d}"),
    ("ap_50", "AP50", "{:>6.3f}"),
    ("ap_75", "AP75", "{:>6.3f}"),
    ("map", "mAP", "{:>6.3f}"),
    ("precision", "prec", "{:>6.3f}"),
    ("recall", "recall", "{:>6.3f}"),
    ("f1", "F1", "{:>6.3f}"),
    ("mean_matched_iou", "mIoU", "{:>6.3f}"),
    ("pq", "PQ", "{:>6.3f}"),
)
_MAX_LISTED = 10


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to the ``cellseg`` parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted masks against ground-truth masks (AP, F1, PQ)",
        description=(
            "Pair predicted and ground-truth label files by base name and report, per image "
            "and as the mean over images: AP at IoU 0.5 and 0.75, mAP over IoU 0.50:0.05:0.95 "
            "(AP = TP/(TP+FP+FN)), precision, recall, F1, mean matched IoU and panoptic "
            "quality, all at IoU 0.5 unless stated. With --tracking RES_DIR instead of --pred: "
            "the Cell Tracking Challenge scores DET, SEG and TRA (with the AOGM) of a result "
            "folder (maskNNN.tif + res_track.txt) against --gt, the 01_GT folder (TRA/ and "
            "SEG/); needs napari-cellseg[track]."
        ),
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--pred", type=Path, metavar="DIR", help="folder of predicted masks")
    mode.add_argument(
        "--tracking",
        type=Path,
        metavar="RES_DIR",
        help="a CTC tracking result folder (maskNNN.tif + res_track.txt) to score with DET, "
        "SEG and TRA against --gt (the 01_GT folder)",
    )
    parser.add_argument(
        "--gt",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder of ground-truth masks (with --tracking: the CTC 01_GT folder)",
    )
    parser.add_argument(
        "--pred_filter",
        "--pred-filter",
        default="_masks",
        metavar="SUFFIX",
        help="name suffix of predicted files before the extension (default: _masks; "
        "'' for <base>.tif)",
    )
    parser.add_argument(
        "--gt_filter",
        "--gt-filter",
        default="_masks",
        metavar="SUFFIX",
        help="name suffix of ground-truth files before the extension (default: _masks)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object (summary, per-image rows, unmatched files) instead of tables",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write the per-image rows as CSV (with --tracking: one row of scores)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --csv file (never one of the mask files read)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Score every pair of files (or a tracking result) and report; return the exit status."""
    if args.tracking is not None:
        return run_tracking(args)
    from napari_cellseg.io.images import read_mask
    from napari_cellseg.metrics import evaluate_pair, summarize

    pairs, unmatched_pred, unmatched_gt = pair_files(
        args.pred, args.gt, args.pred_filter, args.gt_filter
    )
    if args.csv is not None:  # checked before any work, so that a refusal writes nothing
        from napari_cellseg.io.outputs import refuse_existing, refuse_inputs

        inputs = [p for _, pred, gt in pairs for p in (pred, gt)] + unmatched_pred + unmatched_gt
        refuse_inputs([args.csv], inputs, "--csv")
        refuse_existing([args.csv], overwrite=args.overwrite, what="CSV file")
    _warn_unmatched(unmatched_pred, f"predicted files in {args.pred} without ground truth")
    _warn_unmatched(unmatched_gt, f"ground-truth files in {args.gt} without a prediction")

    rows: list[dict] = []
    for base, pred_path, gt_path in pairs:
        pred, gt = read_mask(pred_path), read_mask(gt_path)
        if pred.shape != gt.shape:
            raise CellsegError(
                f"{pred_path} has shape {pred.shape} but {gt_path} has shape {gt.shape}; "
                "predicted and ground-truth masks must have the same size"
            )
        frames = (
            [(base, gt, pred)]
            if gt.ndim == 2
            else [(f"{base}[{i}]", g, p) for i, (g, p) in enumerate(zip(gt, pred))]
        )
        for name, g, p in frames:
            rows.append(
                {"name": name, "pred": str(pred_path), "gt": str(gt_path)} | evaluate_pair(g, p)
            )
    summary = summarize(rows)

    if args.csv is not None:
        _write_csv(args.csv, rows)
    if args.json:
        report = {
            "summary": summary,
            "images": rows,
            "unmatched": {
                "pred": [str(p) for p in unmatched_pred],
                "gt": [str(p) for p in unmatched_gt],
            },
        }
        print(json.dumps(report, indent=2))
    else:
        print_tables(rows, summary)
    return 0


#: Rows of the printed tracking scores: (key, label).
_TRACKING = (("DET", "DET"), ("SEG", "SEG"), ("TRA", "TRA"))


def run_tracking(args: argparse.Namespace) -> int:
    """Score a CTC tracking result folder against its ground truth and report."""
    from napari_cellseg.metrics import tracking_scores

    res_dir, gt_dir = Path(args.tracking), Path(args.gt)
    for option, folder in (("--tracking", res_dir), ("--gt", gt_dir)):
        if not folder.is_dir():
            raise CellsegError(f"{option} {folder}: no such folder")
    if args.csv is not None:  # checked before any work, so that a refusal writes nothing
        from napari_cellseg.io.outputs import refuse_existing, refuse_inputs

        inputs = [p for folder in (res_dir, gt_dir) for p in folder.rglob("*") if p.is_file()]
        refuse_inputs([args.csv], inputs, "--csv")
        refuse_existing([args.csv], overwrite=args.overwrite, what="CSV file")
    scores = tracking_scores(res_dir, gt_dir)
    skipped = dict(getattr(scores, "skipped", {}))
    row = {"result": str(res_dir), "gt": str(gt_dir)} | {
        key: scores.get(key, "") for key, _ in _TRACKING
    }
    row |= {key: value for key, value in scores.items() if key.startswith("AOGM")}
    if args.csv is not None:
        _write_csv(args.csv, [row])
    if args.json:
        print(json.dumps({"scores": dict(scores), "skipped": skipped}, indent=2))
        return 0
    print(f"Cell Tracking Challenge scores of {res_dir} against {gt_dir}")
    for key, label in _TRACKING:
        if key in scores:
            print(f"{label:<4} {scores[key]:.4f}")
        elif key in skipped:
            print(f"{label:<4} skipped: {skipped[key]}")
    if "AOGM" in scores:
        counts = ", ".join(f"{op} {int(scores[f'AOGM_{op}'])}" for op in _OPS)
        print(
            f"AOGM {scores['AOGM']:g} (building the ground truth from nothing: "
            f"{scores['AOGM_0']:g}); operations {counts}"
        )
    return 0


_OPS = ("NS", "FN", "FP", "ED", "EA", "EC")


def pair_files(
    pred_dir: Path, gt_dir: Path, pred_filter: str = "_masks", gt_filter: str = "_masks"
) -> tuple[list[tuple[str, Path, Path]], list[Path], list[Path]]:
    """Pair predicted and ground-truth label files by base name.

    Parameters
    ----------
    pred_dir, gt_dir
        Folders holding the predicted and the ground-truth label files.
    pred_filter, gt_filter
        Name suffixes before the extension; ``<base><filter>.tif`` has base name ``<base>``.

    Returns
    -------
    pairs
        ``(base, pred_path, gt_path)`` sorted by base name.
    unmatched_pred, unmatched_gt
        Candidate files of each folder without a partner.

    Raises
    ------
    CellsegError
        If a folder is missing, holds two files with one base name, or nothing pairs.
    """
    preds = _candidates(Path(pred_dir), pred_filter, "--pred")
    gts = _candidates(Path(gt_dir), gt_filter, "--gt")
    common = sorted(preds.keys() & gts.keys())
    unmatched_pred = [preds[b] for b in sorted(preds.keys() - gts.keys())]
    unmatched_gt = [gts[b] for b in sorted(gts.keys() - preds.keys())]
    if not common:
        raise CellsegError(
            f"no predicted mask in {pred_dir} (names '<base>{pred_filter}.tif') has a "
            f"ground-truth mask in {gt_dir} (names '<base>{gt_filter}.tif') with the same base "
            f"name; found {len(preds)} predicted and {len(gts)} ground-truth files"
            f"{_examples(list(preds.values()) + list(gts.values()))}. "
            "Check the folders, or set --pred_filter/--gt_filter ('' for no suffix)"
        )
    return [(b, preds[b], gts[b]) for b in common], unmatched_pred, unmatched_gt


def _candidates(folder: Path, suffix: str, option: str) -> dict[str, Path]:
    from napari_cellseg.io.images import MASK_EXTENSIONS

    if not folder.is_dir():
        raise CellsegError(f"{option} {folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in MASK_EXTENSIONS:
            continue
        if not path.stem.endswith(suffix) or not path.is_file():
            continue
        base = path.stem[: len(path.stem) - len(suffix)]
        if not base:
            continue
        if base in found:
            raise CellsegError(
                f"{found[base]} and {path} have the same base name '{base}'; keep one of them"
            )
        found[base] = path
    return found


def _examples(paths: list[Path]) -> str:
    if not paths:
        return ""
    names = ", ".join(p.name for p in paths[:4])
    return f" (e.g. {names})"


def _warn_unmatched(paths: list[Path], what: str) -> None:
    if not paths:
        return
    listed = "\n".join(f"  {p.name}" for p in paths[:_MAX_LISTED])
    more = f"\n  ... and {len(paths) - _MAX_LISTED} more" if len(paths) > _MAX_LISTED else ""
    print(f"warning: {len(paths)} {what} (not scored):\n{listed}{more}", file=sys.stderr)


def _write_csv(path: Path, rows: list[dict]) -> None:
    from napari_cellseg.io.outputs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def print_tables(rows: list[dict], summary: dict) -> None:
    """Print the per-image table, the mean row and the pooled scores."""
    last = f"mean of {summary['n_images']}"
    width = max(len(last), *(len(r["name"]) for r in rows))
    header = f"{'image':<{width}}  " + " ".join(f"{h:>6}" for _, h, _ in _TABLE)
    rule = "-" * len(header)
    lines = [header, rule]
    for name, row in [*((r["name"], r) for r in rows), (None, None), (last, summary)]:
        if row is None:
            lines.append(rule)
            continue
        cells = " ".join(fmt.format(row[key]) for key, _, fmt in _TABLE)
        lines.append(f"{name:<{width}}  {cells}")
    print("\n".join(lines))
    print(
        "(scores at IoU 0.5 unless named; the last row averages images and totals the counts)\n"
        f"pooled over all objects at IoU 0.5: AP {summary['pooled_ap_50']:.3f}  "
        f"precision {summary['pooled_precision']:.3f}  recall {summary['pooled_recall']:.3f}  "
        f"F1 {summary['pooled_f1']:.3f}  PQ {summary['pooled_pq']:.3f}  "
        f"(TP {summary['tp']}, FP {summary['fp']}, FN {summary['fn']})"
    )
