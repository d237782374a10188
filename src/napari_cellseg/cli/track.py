"""``cellseg track``: link the cells of a time-lapse into tracks and a lineage."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg track``."""
    p = subparsers.add_parser(
        "track",
        help="link segmented cells across frames (DeLTA-style tracking model, or LapTrack)",
        description="Track the cells of a time-lapse. Labels come from --labels, or from "
        "--seg_model, which segments every frame first. Writes a Cell Tracking Challenge "
        "result (maskNNN.tif + res_track.txt) and lineage.csv (id, frame, mother, daughters, "
        "area, length, centroid) to --out.",
    )
    p.add_argument(
        "--images",
        help="the movie: a CTC sequence folder (tNNN.tif), a folder of frames or a TYX TIFF",
    )
    p.add_argument(
        "--labels",
        help="its labels: a folder of label frames (maskNNN.tif, *_masks.tif...) or a TYX TIFF",
    )
    p.add_argument("--model", help="tracking model (cellseg train --architecture track)")
    p.add_argument(
        "--method",
        default="model",
        choices=("model", "laptrack"),
        help="model: the tracking U-Net; laptrack: LAP linking of centroids (needs no model; "
        "pip install napari-cellseg[track])",
    )
    p.add_argument(
        "--seg_model",
        help="segment each frame with this segmentation model (file or built-in name) first",
    )
    p.add_argument("--out", required=True, help="result folder (CTC layout + lineage.csv)")
    p.add_argument(
        "--save_cells",
        action="store_true",
        help="also write DeLTA-style per-cell outputs to <out>/cells/ "
        "(<frame file>Cell%%06d.tif, the tracking output of each seed cell)",
    )
    p.add_argument("--hit_threshold", type=float, help="output above which a pixel counts (0.05)")
    p.add_argument("--min_score", type=float, help="fraction of a cell needed to link it (0.2)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Read, (segment,) track and write."""
    from collections import Counter

    import numpy as np
    from tqdm import tqdm

    from napari_cellseg.errors import CellsegError
    from napari_cellseg.track import engine, folders, table

    if args.method == "model" and not args.model:
        raise CellsegError(
            "--method model needs --model (a tracking model: cellseg train --architecture "
            "track); or pass --method laptrack"
        )
    if not args.labels and not args.seg_model:
        raise CellsegError("pass --labels, or --seg_model to segment the frames first")
    if args.labels and args.seg_model:
        raise CellsegError("pass --labels or --seg_model, not both")
    if args.save_cells and args.method != "model":
        raise CellsegError("--save_cells writes the tracking model's outputs: use --method model")
    out = Path(args.out)
    _refuse_existing(out, args.overwrite, args.save_cells, 0)
    images, image_files = (None, [])
    if args.images:
        images, image_files = folders.read_frames(args.images, labels=False)
    elif args.method == "model" or args.seg_model:
        raise CellsegError("--images is needed to track with a model or to segment")
    if args.seg_model:
        labels = _segment(images, args.seg_model, args.device)
    else:
        labels, _ = folders.read_frames(args.labels, labels=True)
    _refuse_existing(out, args.overwrite, args.save_cells, len(labels))
    source = str(args.labels or args.images)
    bar = tqdm(total=len(labels), unit="frame", desc="track")
    result = engine.run(
        engine.track_stack(
            images,
            labels,
            model=args.model,
            method=args.method,
            device=args.device,
            hit_threshold=args.hit_threshold,
            min_score=args.min_score,
            keep_outputs=args.save_cells,
            source=source,
        ),
        lambda p: bar.update(p.frame - bar.n),
    )
    bar.close()
    written = folders.write_result(out, result.labels, result.tracks, overwrite=args.overwrite)
    table.write_lineage_csv(out / "lineage.csv", table.lineage_rows(result.labels, result.tracks))
    if args.save_cells:
        _write_cells(out / "cells", result, image_files, np)
    children = Counter(t.parent for t in result.tracks if t.parent)
    divisions = sum(1 for n in children.values() if n >= 2)
    print(
        f"{len(result.tracks)} tracks, {divisions} division(s) over {len(labels)} frames; wrote "
        f"{len(written)} files and lineage.csv to {out}"
    )
    return 0


def _refuse_existing(out: Path, overwrite: bool, cells: bool, n_frames: int) -> None:
    """Refuse to replace an earlier result (its ``n_frames`` mask files too, once known)."""
    from napari_cellseg.io.outputs import refuse_existing
    from napari_cellseg.track.folders import frame_digits

    digits = frame_digits(n_frames) if n_frames else 3
    targets = [out / "res_track.txt", out / "lineage.csv"]
    targets += [out / f"mask{t:0{digits}d}.tif" for t in range(n_frames)]
    if cells and (out / "cells").is_dir():
        targets += sorted((out / "cells").iterdir())
    refuse_existing(targets, overwrite=overwrite, what="tracking result file")


def _segment(images, model: str, device: str):
    """Labels of every frame from a segmentation model."""
    import numpy as np
    from tqdm import tqdm

    from napari_cellseg.predict import Segmenter

    seg = Segmenter.from_file(model, device=device)
    frames = [
        next(iter(seg.segment_raw(frame, source=f"frame {t}"))).labels
        for t, frame in enumerate(tqdm(images, unit="frame", desc="segment"))
    ]
    return np.stack(frames).astype(np.int32)


def _write_cells(folder: Path, result, image_files, np) -> None:
    """DeLTA's per-cell outputs: each seed's output window, named after its frame file."""
    from napari_cellseg.io.images import write_image
    from napari_cellseg.track.table import cell_file_name

    folder.mkdir(parents=True, exist_ok=True)
    for t, seeds in result.outputs.items():
        frame = image_files[t] if len(image_files) > t else Path(f"frame{t:03d}.tif")
        for track_id, _, prob in seeds:
            cell = result.cells.get(track_id, track_id)
            name = cell_file_name(Path(frame).with_suffix(".tif").name, cell)
            write_image(folder / name, (np.clip(prob, 0, 1) * 255).astype(np.uint8))
