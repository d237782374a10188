"""A huge image block by block: the whole image's labels with memory bounded by the block.

:func:`segment_chunked` segments a :class:`~napari_cellseg.io.images.chunked.ChunkedImage`
(OME-Zarr, Zarr, lazy TIFF) into an OME-Zarr label image of the same chunking. The work is cut
into square blocks (a multiple of the chunk, :data:`~napari_cellseg.reconstruction.omni.BLOCK`
by default) and done in passes; each pass maps a function over the blocks (in this process, or
on a Dask cluster with :mod:`napari_cellseg.predict.dask`) and only small tables come back:

0. the intensity percentiles, from the same strided subsample the whole image uses;
1. the network on the tiles of the whole image's grid (:meth:`Segmenter.tile_layout`), in the
   whole image's batches (same tiles, same batch size: the same arithmetic, bit for bit), a
   block's worth of tiles per task, each tile's outputs stored once in the scratch; then per
   block, the stored tiles that overlap it and its one-pixel rim blended as the whole image
   blends them, and the weak foreground's components (``dist > mask_threshold - 1``), joined
   across the seams by their rim pixels, kept when they hold a strong pixel (the hysteresis
   of :func:`omni_masks`);
2. :func:`~napari_cellseg.reconstruction.omni.link_block` on each block, as ``omni_masks``
   does it, and the components joined across the seams (:func:`join_ids`), with each object's
   box and size and a histogram of the flow lengths;
3. the exact median flow length (a second histogram pass) and the flow check of each mask
   (:func:`inconsistent_masks`), in the same groups as ``omni_masks``;
4. holes filled per group of masks, and the labels written chunk by chunk.

With the default block (1024) the labels are identical to
:meth:`Segmenter.segment` on the whole image, ids included; with another block the objects
are the same and their ids may differ (``omni_masks``' numbering follows its blocks).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images.chunked import ChunkedImage, open_chunked, write_label_zarr
from napari_cellseg.io.outputs import temporary_path
from napari_cellseg.normalize import sample_step, scale_range
from napari_cellseg.predict.config import PredictConfig
from napari_cellseg.preprocess import NORMALIZATION, select_channels
from napari_cellseg.reconstruction.cleanup import STRUCT8, fill_label_holes
from napari_cellseg.reconstruction.omni import (
    BLOCK,
    DEFAULT_NITER,
    flow_scale_inverse,
    inconsistent_masks,
    join_ids,
    link_block,
    link_window,
)

#: ``mapper(function, items, shared) -> [function(item, shared) for item in items]``.
Mapper = Callable[[Callable[[Any, Any], Any], Sequence[Any], Any], list]

Bounds = tuple[int, int, int, int]


def serial_map(function: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any) -> list:
    """The :data:`Mapper` of one process: each item in turn."""
    return [function(item, shared) for item in items]


@dataclass(frozen=True)
class Job:
    """What every block task needs (small and picklable: paths and options)."""

    source: str
    chunk: int
    config: PredictConfig
    scratch: str
    block: int
    shape: tuple[int, int]
    params: dict[str, Any] = field(default_factory=dict)

    def image(self) -> ChunkedImage:
        """The input, opened lazily."""
        return open_chunked(self.source, chunk=self.chunk)

    def scratch_array(self, name: str) -> Any:
        """An intermediate Zarr array of the run."""
        import zarr

        return zarr.open_array(str(Path(self.scratch) / name), mode="r+")

    def blocks(self) -> list[Bounds]:
        """``(y0, y1, x0, x1)`` of the blocks, row by row (``omni_masks``' order)."""
        (ny, nx), b = self.shape, self.block
        return [
            (y0, min(y0 + b, ny), x0, min(x0 + b, nx))
            for y0 in range(0, ny, b)
            for x0 in range(0, nx, b)
        ]

    def block_index(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Index (in :meth:`blocks` order) of the block holding each pixel."""
        per_row = -(-self.shape[1] // self.block)
        return (ys // self.block) * per_row + xs // self.block


def choose_block(chunks: tuple[int, int], block: int | None = None) -> int:
    """The block edge: ``block`` or :data:`BLOCK`, rounded up to a multiple of both chunk edges.

    Raises
    ------
    CellsegError
        For a block smaller than 64 pixels.
    """
    wanted = BLOCK if block is None else int(block)
    if wanted < 64:
        raise CellsegError(f"--block {wanted} is too small; use at least 64 pixels")
    step = int(np.lcm(*chunks))
    return -(-wanted // step) * step


def segment_chunked(
    source: str | Path,
    destination: str | Path,
    config: PredictConfig,
    *,
    chunk: int = 1024,
    block: int | None = None,
    mapper: Mapper = serial_map,
    replace: bool = False,
) -> Path:
    """Segment one huge image into an OME-Zarr label image of the same chunking.

    Parameters
    ----------
    source
        OME-Zarr / Zarr image or TIFF (:func:`~napari_cellseg.io.images.chunked.open_chunked`).
    destination
        The label image to write (``*_masks.ome.zarr``); written atomically.
    config
        The prediction options (an omni-family model at its own scale: ``--diameter 0``).
    chunk
        Chunk edge of a TIFF's labels.
    block
        Work block edge (see :func:`choose_block`); memory per task grows with it.
    mapper
        How the blocks are mapped: :func:`serial_map` or a Dask client's
        (:func:`napari_cellseg.predict.dask.client_mapper`).
    replace
        Replace an existing ``destination`` (else it is refused before any work).

    Returns
    -------
    pathlib.Path
        ``destination``.
    """
    from napari_cellseg.predict.segmenter import cached_segmenter

    image = open_chunked(source, chunk=chunk)
    seg = cached_segmenter(config)
    _check_model(seg, image)
    params = config.params_for(seg.arch)
    destination = Path(destination)
    if destination.exists() and not replace:
        raise CellsegError(f"{destination} already exists; nothing was written")
    scratch = temporary_path(destination.with_name(destination.name + ".work"))
    job = Job(
        str(image.path),
        chunk,
        config,
        str(scratch),
        choose_block(image.chunks, block),
        image.shape,
        {
            "mask_threshold": params.mask_threshold,
            "flow_threshold": params.flow_threshold,
            "niter": DEFAULT_NITER if params.niter is None else int(params.niter),
            "min_size": params.min_size,
        },
    )
    try:
        _make_scratch(job, image, seg)
        levels = _percentiles(job, mapper)
        mapper(partial(_tile_pass, job), _tile_groups(job, seg), levels)
        weak = mapper(partial(_network_pass, job), job.blocks(), None)
        keep = _hysteresis_table(job, weak)
        links = mapper(partial(_link_pass, job), job.blocks(), keep)
        objects = _join_objects(job, links)
        if job.params["flow_threshold"] > 0:
            _check_flows(job, mapper, objects, links)
        objects.keep &= objects.size >= job.params["min_size"]
        holes = mapper(partial(_hole_pass, job), _groups(job, objects), objects)
        objects.add_holes(job, holes)
        with write_label_zarr(destination, image.shape, image.chunks, replace=replace) as out:
            mapper(partial(_write_pass, job, str(out.location)), job.blocks(), objects)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return destination


def _check_model(seg: Any, image: ChunkedImage) -> None:
    maps = seg.named_outputs(np.zeros((seg.spec.n_outputs(), 2, 2), np.float32))
    if not {"flow", "dist"} <= set(maps):
        raise CellsegError(
            f"{image.path}: huge images are reconstructed block by block for flow models "
            f"(omni); {seg.name} is a {seg.arch} model: segment tiles of the image as "
            "separate files, or use an omni model"
        )
    if seg.scale != 1.0:
        raise CellsegError(
            f"{image.path}: --diameter resizes the whole image, which a huge image is not; "
            "resize the image beforehand (to the model's training diameter) and give "
            "--diameter 0"
        )


def _make_scratch(job: Job, image: ChunkedImage, seg: Any) -> None:
    import zarr

    (ny, nx), (cy, cx) = image.shape, image.chunks
    n_outputs, grid = seg.spec.n_outputs(), seg.tile_layout(ny, nx)
    root = Path(job.scratch)
    zarr.create_array(
        str(root / "tiles"),
        shape=(len(grid.starts), n_outputs, *grid.tile),
        chunks=(1, n_outputs, *grid.tile),
        dtype="f4",
    )
    zarr.create_array(
        str(root / "outputs"), shape=(n_outputs, ny, nx), chunks=(n_outputs, cy, cx), dtype="f4"
    )
    for name in ("weak", "prelim"):
        zarr.create_array(str(root / name), shape=(ny, nx), chunks=(cy, cx), dtype="i4")


# --------------------------------------------------------------------------- pass 0


def _percentiles(job: Job, mapper: Mapper) -> np.ndarray:
    """``(C, 2)`` low/high percentiles of each model channel, as the whole image has them."""
    samples = mapper(partial(_sample_pass, job), job.blocks(), None)
    values = np.concatenate(samples, axis=1)
    low, high = NORMALIZATION["low"], NORMALIZATION["high"]
    return np.array([np.percentile(v, [low, high]) for v in values])


def _sample_pass(job: Job, bounds: Bounds, _shared: Any) -> np.ndarray:
    """The block's pixels of the whole image's strided subsample, ``(C, n)`` float32."""
    y0, y1, x0, x1 = bounds
    channels = _model_channels(job, job.image().read(y0, y1, x0, x1))
    nx = job.shape[1]
    step = sample_step(job.shape[0] * nx)
    flat = (np.arange(y0, y1)[:, None] * nx + np.arange(x0, x1)[None, :]) % step == 0
    return channels[:, flat]


def _model_channels(job: Job, raw: np.ndarray) -> np.ndarray:
    from napari_cellseg.predict.segmenter import cached_segmenter

    seg = cached_segmenter(job.config)
    picked = select_channels(raw, seg.channels, source=job.source)
    return np.asarray(picked, dtype=np.float32)


# --------------------------------------------------------------------------- pass 1


@dataclass
class SeamTable:
    """What a block pass returns: its number of ids and the pixels on its seams.

    ``rim_*``: pixels of the neighbouring blocks this block labelled too (flat image index,
    this block's id); ``edge_*``: the block's own pixels on its border (flat index, id).
    """

    n: int
    rim_flat: np.ndarray
    rim_ids: np.ndarray
    edge_flat: np.ndarray
    edge_ids: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _rim_bounds(job: Job, bounds: Bounds) -> Bounds:
    """The block plus the row below and the columns left and right (``link_block``'s rim)."""
    (y0, y1, x0, x1), (ny, nx) = bounds, job.shape
    return y0, min(y1 + 1, ny), max(x0 - 1, 0), min(x1 + 1, nx)


def _tile_groups(job: Job, seg: Any) -> list[range]:
    """The whole image's tile batches (indices), a block's worth of tiles per task."""
    grid = seg.tile_layout(*job.shape)
    n_batches = -(-len(grid.starts) // grid.batch)
    tiles = max(1, job.block**2 // (grid.tile[0] * grid.tile[1]))
    per_task = max(1, tiles // grid.batch)
    return [range(k, min(k + per_task, n_batches)) for k in range(0, n_batches, per_task)]


def _tile_pass(job: Job, batches: range, levels: np.ndarray) -> None:
    """The network on some of the whole image's tile batches, each tile's outputs stored.

    Every batch is the one the whole image runs (same tiles, same size: the batch size changes
    the last bits of the outputs), so each tile is computed once and exactly as there.
    """
    from napari_cellseg.predict.segmenter import cached_segmenter

    seg = cached_segmenter(job.config)
    grid = seg.tile_layout(*job.shape)
    (th, tw), batch = grid.tile, grid.batch
    store = job.scratch_array("tiles")
    for k in batches:
        part = grid.starts[k * batch : (k + 1) * batch]
        tiles = [_padded_input(job, (y, y + th, x, x + tw), levels) for y, x in part]
        store[k * batch : k * batch + len(part)] = seg.forward(np.stack(tiles))


def _network_pass(job: Job, bounds: Bounds, _shared: Any) -> SeamTable:
    """Network outputs of the block (blended, written), its weak foreground's components."""
    from napari_cellseg.predict.segmenter import cached_segmenter

    seg = cached_segmenter(job.config)
    ext = _rim_bounds(job, bounds)
    named = seg.named_outputs(_blended(job, seg, ext))
    maps = np.concatenate([m[None] if m.ndim == 2 else m for m in named.values()])
    y0, y1, x0, x1 = bounds
    ey0, _, ex0, _ = ext
    core = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
    job.scratch_array("outputs")[:, y0:y1, x0:x1] = maps[:, core[0], core[1]]
    dist = named["dist"]
    threshold = job.params["mask_threshold"]
    comp, n = ndi.label(dist > threshold - 1.0, STRUCT8)
    strong = np.zeros(n + 1, dtype=bool)
    strong[comp[dist > threshold]] = True
    strong[0] = False
    job.scratch_array("weak")[y0:y1, x0:x1] = comp[core]
    return _seams(job, bounds, ext, comp, n, {"strong": strong})


def _seams(
    job: Job, bounds: Bounds, ext: Bounds, ids: np.ndarray, n: int, extra: dict
) -> SeamTable:
    """The :class:`SeamTable` of ids labelled on the block's rim window ``ext``."""
    y0, y1, x0, x1 = bounds
    ey0, ey1, ex0, ex1 = ext
    gy, gx = np.mgrid[ey0:ey1, ex0:ex1]
    inside = (gy < y1) & (gx >= x0) & (gx < x1)
    border = inside & ((gy == y0) | (gy == y1 - 1) | (gx == x0) | (gx == x1 - 1))
    flat = gy * job.shape[1] + gx
    rim, edge = ~inside & (ids > 0), border & (ids > 0)
    return SeamTable(n, flat[rim], ids[rim], flat[edge], ids[edge], extra)


def _blended(job: Job, seg: Any, region: Bounds) -> np.ndarray:
    """Raw outputs ``(K, h, w)`` on ``region``: the stored tiles blended as the whole image
    blends them (same tiles, same order)."""
    from napari_cellseg.predict.segmenter import _blend_window

    ry0, ry1, rx0, rx1 = region
    grid = seg.tile_layout(*job.shape)
    (th, tw) = grid.tile
    store = job.scratch_array("tiles")
    window = _blend_window((th, tw))
    acc = np.zeros((seg.spec.n_outputs(), ry1 - ry0, rx1 - rx0), np.float32)
    norm = np.zeros((ry1 - ry0, rx1 - rx0), np.float32)
    for g, (y, x) in enumerate(grid.starts):
        if not (y < ry1 and y + th > ry0 and x < rx1 and x + tw > rx0):
            continue
        sy = slice(max(y, ry0), min(y + th, ry1))
        sx = slice(max(x, rx0), min(x + tw, rx1))
        tile = (slice(sy.start - y, sy.stop - y), slice(sx.start - x, sx.stop - x))
        dst = (slice(sy.start - ry0, sy.stop - ry0), slice(sx.start - rx0, sx.stop - rx0))
        acc[:, dst[0], dst[1]] += np.asarray(store[g])[:, tile[0], tile[1]] * window[tile]
        norm[dst] += window[tile]
    acc /= norm
    return acc


def _padded_input(job: Job, region: Bounds, levels: np.ndarray) -> np.ndarray:
    """The normalised model input on a region of the padded image (reflected past the end)."""
    y0, y1, x0, x1 = region
    (ny, nx) = job.shape
    rows = np.arange(y0, y1)
    cols = np.arange(x0, x1)
    rows = np.where(rows < ny, rows, 2 * (ny - 1) - rows)
    cols = np.where(cols < nx, cols, 2 * (nx - 1) - cols)
    r0, c0 = int(rows.min()), int(cols.min())
    raw = job.image().read(r0, int(rows.max()) + 1, c0, int(cols.max()) + 1)
    channels = _model_channels(job, raw)[:, (rows - r0)[:, None], (cols - c0)[None, :]]
    return np.stack([scale_range(c, lo, hi) for c, (lo, hi) in zip(channels, levels)])


def _hysteresis_table(job: Job, tables: list[SeamTable]) -> dict[str, np.ndarray]:
    """Which weak components are foreground, by block offset + local id."""
    offsets, lut = _join_tables(tables)
    strong = np.concatenate([[False]] + [t.extra["strong"][1:] for t in tables])
    keep = np.zeros(int(lut.max()) + 1, dtype=bool)
    keep[lut[strong]] = True
    keep[0] = False
    return {"offsets": offsets, "keep": keep[lut]}


def _join_tables(tables: list[SeamTable]) -> tuple[np.ndarray, np.ndarray]:
    """Block offsets and the lookup table of the ids joined across every seam."""
    counts = np.array([t.n for t in tables], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    edge_flat = np.concatenate([t.edge_flat for t in tables])
    edge_ids = np.concatenate([t.edge_ids + o for t, o in zip(tables, offsets)])
    rim_flat = np.concatenate([t.rim_flat for t in tables])
    rim_ids = np.concatenate([t.rim_ids + o for t, o in zip(tables, offsets)])
    order = np.argsort(edge_flat, kind="stable")
    edge_flat, edge_ids = edge_flat[order], edge_ids[order]
    at = np.clip(np.searchsorted(edge_flat, rim_flat), 0, max(edge_flat.size - 1, 0))
    found = edge_flat[at] == rim_flat if edge_flat.size else np.zeros(0, bool)
    lut = join_ids(edge_ids[at[found]], rim_ids[found], int(counts.sum()))
    return offsets, lut


def _global_ids(job: Job, local: np.ndarray, origin: tuple[int, int], offsets: np.ndarray):
    """Block offset + local id of each pixel of a window at ``origin`` (0 where local is 0)."""
    gy, gx = np.mgrid[
        origin[0] : origin[0] + local.shape[0], origin[1] : origin[1] + local.shape[1]
    ]
    ids = offsets[job.block_index(gy, gx)] + local
    return np.where(local > 0, ids, 0)


# --------------------------------------------------------------------------- pass 2


def _link_pass(job: Job, bounds: Bounds, keep: dict[str, np.ndarray]) -> SeamTable:
    """``omni_masks``' linking on one block, with each component's box, size and flow lengths."""
    niter = job.params["niter"]
    win = link_window(bounds, job.shape, niter)
    origin = (win[0].start, win[1].start)
    outputs = job.scratch_array("outputs")
    maps = outputs[:, win[0], win[1]]
    weak = job.scratch_array("weak")[win]
    fg = keep["keep"][_global_ids(job, weak, origin, keep["offsets"])]
    boundary = maps[3] if maps.shape[0] > 3 else None
    n, gy, gx, comp, core = link_block(maps[:2], fg, boundary, bounds, origin, niter, True, "cpu")
    y0, y1, x0, x1 = bounds
    ext = _rim_bounds(job, bounds)
    ids = np.zeros((ext[1] - ext[0], ext[3] - ext[2]), dtype=np.int32)
    ids[gy - ext[0], gx - ext[2]] = comp
    inner = ids[y0 - ext[0] : y1 - ext[0], x0 - ext[2] : x1 - ext[2]]
    job.scratch_array("prelim")[y0:y1, x0:x1] = inner
    boxes = ndi.find_objects(inner, max_label=n)
    box = np.array(
        [(b[0].start + y0, b[0].stop + y0, b[1].start + x0, b[1].stop + x0) if b else (0, 0, 0, 0)
         for b in boxes], dtype=np.int64,
    ).reshape(-1, 4)  # fmt: skip
    flow = maps[:2, y0 - origin[0] : y1 - origin[0], x0 - origin[1] : x1 - origin[1]]
    inside = inner > 0
    lengths = np.hypot(flow[0][inside], flow[1][inside])
    extra = {
        "size": np.bincount(inner.ravel(), minlength=n + 1)[1:],
        "box": box,
        "high": np.bincount(lengths.view(np.uint32) >> 16, minlength=1 << 16),
    }
    return _seams(job, bounds, ext, ids, n, extra)


# --------------------------------------------------------------------------- passes 3 and 4


@dataclass
class Objects:
    """The objects of the image: numbers ``1..N`` in ``omni_masks``' order and their fate.

    ``lut`` maps a block offset + prelim id to its object; ``size`` and ``box`` (``y0, y1, x0,
    x1``) are per object (index 0 unused); ``keep`` says which survive the checks;
    ``flow_hist`` counts the foreground's flow lengths by their high 16 bits (for the exact
    median, whose inverse is ``inv``); ``holes`` holds, per block, the flat positions and
    objects of the hole pixels filled.
    """

    offsets: np.ndarray
    lut: np.ndarray
    size: np.ndarray
    box: np.ndarray
    keep: np.ndarray
    flow_hist: np.ndarray
    inv: np.float32 = np.float32(1.0)
    holes: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def numbers(self, job: Job, prelim: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        """The object of each pixel of a window of prelim ids at ``origin``."""
        return self.lut[_global_ids(job, prelim, origin, self.offsets)]

    def add_holes(self, job: Job, found: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """File the hole pixels of :func:`_hole_pass` under their blocks."""
        if not found:
            return
        flat = np.concatenate([f for f, _ in found])
        obj = np.concatenate([o for _, o in found])
        where = job.block_index(flat // job.shape[1], flat % job.shape[1])
        for b in np.unique(where):
            self.holes[int(b)] = (flat[where == b], obj[where == b])


def _join_objects(job: Job, tables: list[SeamTable]) -> Objects:
    """Objects joined across the seams, with their sizes and boxes."""
    offsets, lut = _join_tables(tables)
    n = int(lut.max())
    prelim = np.concatenate([[0], *[lut[o + 1 : o + 1 + t.n] for t, o in zip(tables, offsets)]])
    size = np.zeros(n + 1, dtype=np.int64)
    np.add.at(size, prelim, np.concatenate([[0]] + [t.extra["size"] for t in tables]))
    boxes = np.concatenate([np.zeros((1, 4), np.int64)] + [t.extra["box"] for t in tables])
    box = np.tile(np.array([[np.iinfo(np.int64).max, -1] * 2], dtype=np.int64), (n + 1, 1))
    counted = np.concatenate([[False]] + [t.extra["size"] > 0 for t in tables])
    for k, ufunc in enumerate((np.minimum, np.maximum, np.minimum, np.maximum)):
        ufunc.at(box[:, k], prelim[counted], boxes[counted, k])
    keep = size > 0
    keep[0] = False
    return Objects(offsets, lut, size, box, keep, sum(t.extra["high"] for t in tables))


def _groups(job: Job, objects: Objects) -> list[tuple[np.ndarray, Bounds]]:
    """Kept objects by the block of their box's corner, with the union box plus one pixel."""
    ids = np.flatnonzero(objects.keep)
    box = objects.box[ids]
    group = job.block_index(box[:, 0], box[:, 2])
    (ny, nx), out = job.shape, []
    for g in np.unique(group):
        mine, b = ids[group == g], box[group == g]
        crop = (
            max(int(b[:, 0].min()) - 1, 0),
            min(int(b[:, 1].max()) + 1, ny),
            max(int(b[:, 2].min()) - 1, 0),
            min(int(b[:, 3].max()) + 1, nx),
        )
        out.append((mine, crop))
    return out


def _crop_objects(job: Job, objects: Objects, crop: Bounds, *, kept: bool) -> np.ndarray:
    y0, y1, x0, x1 = crop
    lab = objects.numbers(job, job.scratch_array("prelim")[y0:y1, x0:x1], (y0, x0))
    return np.where(objects.keep[lab], lab, 0) if kept else lab


def _check_flows(job: Job, mapper: Mapper, objects: Objects, links: list[SeamTable]) -> None:
    """Drop the objects that fail ``omni_masks``' flow check (exact median flow length)."""
    high = objects.flow_hist
    total = int(high.sum())
    if total == 0:
        return
    ranks = ((total - 1) // 2, total // 2)
    cum = np.cumsum(high)
    bins = tuple(int(np.searchsorted(cum, k, side="right")) for k in ranks)
    lows = mapper(partial(_median_pass, job), job.blocks(), bins)
    values = []
    for i, (k, b) in enumerate(zip(ranks, bins)):
        low = np.cumsum(sum(h[i] for h in lows))
        rank = k - (int(cum[b - 1]) if b else 0)
        bits = np.uint32((b << 16) | int(np.searchsorted(low, rank, side="right")))
        values.append(bits.view(np.float32))
    objects.inv = flow_scale_inverse(float(np.mean(np.array(values, dtype=np.float32))))
    for ids, bad in mapper(partial(_check_pass, job), _groups(job, objects), objects):
        objects.keep[ids[bad]] = False


def _median_pass(job: Job, bounds: Bounds, bins: tuple[int, int]) -> list[np.ndarray]:
    """Histograms of the low bits of the flow lengths whose high bits are ``bins``."""
    y0, y1, x0, x1 = bounds
    inside = job.scratch_array("prelim")[y0:y1, x0:x1] > 0
    flow = job.scratch_array("outputs")[:2, y0:y1, x0:x1]
    bits = np.hypot(flow[0][inside], flow[1][inside]).view(np.uint32)
    return [np.bincount(bits[bits >> 16 == b] & 0xFFFF, minlength=1 << 16) for b in bins]


def _check_pass(
    job: Job, group: tuple[np.ndarray, Bounds], objects: Objects
) -> tuple[np.ndarray, np.ndarray]:
    """The flow check of one group of masks."""
    ids, (y0, y1, x0, x1) = group
    lab = _crop_objects(job, objects, (y0, y1, x0, x1), kept=False)
    present, compact = np.unique(lab, return_inverse=True)
    compact = compact.reshape(lab.shape)
    flow = job.scratch_array("outputs")[:2, y0:y1, x0:x1]
    mine = np.searchsorted(present, ids)
    threshold = job.params["flow_threshold"]
    return ids, inconsistent_masks(compact, flow, mine, objects.inv, threshold)


def _hole_pass(
    job: Job, group: tuple[np.ndarray, Bounds], objects: Objects
) -> tuple[np.ndarray, np.ndarray]:
    """The hole pixels of one group of masks: flat positions and their objects."""
    ids, (y0, y1, x0, x1) = group
    lab = _crop_objects(job, objects, (y0, y1, x0, x1), kept=True)
    filled = fill_label_holes(lab)
    hole = (filled != lab) & np.isin(filled, ids)
    gy, gx = np.nonzero(hole)
    return (gy + y0) * job.shape[1] + gx + x0, filled[hole]


def _write_pass(job: Job, location: str, bounds: Bounds, objects: Objects) -> None:
    """The final labels of one block, numbered 1..N in object order, into the label image."""
    import zarr

    y0, y1, x0, x1 = bounds
    final = np.cumsum(objects.keep).astype(np.uint32) * objects.keep
    lab = final[_crop_objects(job, objects, bounds, kept=False)]
    index = job.blocks().index(bounds)
    if index in objects.holes:
        flat, obj = objects.holes[index]
        lab[flat // job.shape[1] - y0, flat % job.shape[1] - x0] = final[obj]
    zarr.open_array(str(Path(location) / "s0"), mode="r+")[y0:y1, x0:x1] = lab
