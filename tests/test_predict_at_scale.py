"""Prediction at scale for real: huge images block by block (Zarr, OME-Zarr, lazy TIFF), a
local Dask cluster of worker processes, resumable folder runs, and what goes wrong on a
cluster (a scheduler that does not answer, a worker that dies, axes that are not an image)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import tifffile
import zarr

from napari_cellseg import synth
from napari_cellseg.cli import main
from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images import read_mask
from napari_cellseg.io.images.chunked import open_chunked, read_label_zarr, write_label_zarr
from napari_cellseg.predict import dask as on_dask
from napari_cellseg.predict import predict_frames, results
from napari_cellseg.predict.blockwise import segment_chunked
from napari_cellseg.predict.config import PredictConfig
from napari_cellseg.predict.segmenter import cached_segmenter

#: The shipped nuclei model at its own scale (a huge image is never resized whole).
CONFIG = PredictConfig(model="nuclei", diameter=0)
#: Larger than one 1024-pixel block both ways: four blocks, seams across nuclei.
SHAPE = (1100, 1060)


def _same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects (ids may differ)."""
    if a.shape != b.shape or (a > 0).tolist() != (b > 0).tolist():
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A synthetic nuclei image as Zarr (256-pixel chunks), OME-Zarr and TIFF, and the labels
    one process gives on the whole image in memory."""
    root = tmp_path_factory.mktemp("huge")
    image, _ = synth.nuclei(SHAPE, seed=3)
    image = image.astype(np.float32)
    zarr.create_array(str(root / "plain.zarr"), data=image, chunks=(256, 256))
    from ome_zarr.writer import write_image

    write_image(image[None], zarr.open_group(str(root / "plate.ome.zarr"), mode="w"), axes="cyx")
    tifffile.imwrite(root / "scan.tif", image, tile=(256, 256))
    seg = cached_segmenter(CONFIG)
    frames = seg.prepare(image, channel_axis=None, source="huge")
    whole = results(predict_frames(seg, frames, CONFIG.params_for(seg.arch)))[0].labels
    assert whole.max() > 200  # hundreds of nuclei, many across the block seams
    return root, whole


def test_a_huge_zarr_block_by_block_gives_the_labels_of_the_whole_image_and_its_chunking(huge):
    root, whole = huge
    out = segment_chunked(root / "plain.zarr", root / "plain_masks.ome.zarr", CONFIG)
    labels = zarr.open_group(str(out), mode="r")["s0"]
    assert labels.chunks == (256, 256) and labels.dtype == np.uint32
    assert np.array_equal(read_label_zarr(out), whole)  # ids included
    meta = zarr.open_group(str(out), mode="r").attrs.asdict()
    axes = meta.get("ome", meta)["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["y", "x"]
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


def test_an_ome_zarr_and_a_tiff_read_lazily_give_the_same_objects_with_smaller_blocks(huge):
    root, whole = huge
    for source in ("plate.ome.zarr", "scan.tif"):
        out = segment_chunked(
            root / source, root / f"{source}_masks.ome.zarr", CONFIG, chunk=256, block=512
        )
        assert _same_objects(read_label_zarr(out), whole), source


@pytest.fixture(scope="module")
def client():
    """A local cluster of 2 single-threaded worker processes."""
    c = on_dask.connect(workers=2, timeout=30)
    yield c
    on_dask.close(c)


def test_a_local_dask_cluster_gives_the_labels_of_one_process(huge, client):
    root, whole = huge
    assert on_dask.describe(client).startswith("Dask: 2 worker(s), dashboard http")
    out = segment_chunked(
        root / "plain.zarr",
        root / "dask_masks.ome.zarr",
        CONFIG,
        mapper=on_dask.client_mapper(client),
    )
    assert np.array_equal(read_label_zarr(out), whole)


def _die_once(marker: str, _shared) -> int:
    """Kill the worker process the first time (as an out-of-memory kill would), then work."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return 7


def _always_die(_item, _shared) -> int:
    os._exit(1)


def test_a_task_whose_worker_dies_runs_again_and_one_that_always_kills_it_is_reported(
    client, tmp_path
):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        done = on_dask.run_tasks(client, _die_once, [str(tmp_path / "died")])
        assert done == [(7, None)] and (tmp_path / "died").exists()
        ((_, error),) = on_dask.run_tasks(client, _always_die, ["x"])
        assert "its worker died each time it ran" in on_dask._why(error)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error_within_the_timeout(tmp_path, capsys):
    synth.make_dataset(tmp_path / "images", kind="nuclei", n=1, shape=(64, 64), seed=0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    argv = ["predict", "--model", "nuclei", "--dir", str(tmp_path / "images")]
    argv += ["--output", str(tmp_path / "out"), "--dask", address, "--dask_timeout", "2"]
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 20
    err = capsys.readouterr().err
    assert f"could not reach the Dask scheduler at {address} within 2 s" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_folder_on_dask_writes_what_one_process_writes_and_a_killed_run_resumes(tmp_path, capsys):
    images = tmp_path / "images"
    synth.make_dataset(images, kind="nuclei", n=3, shape=(200, 180), seed=1)
    for mask in images.glob("*_masks.tif"):
        mask.unlink()  # a folder of raw images
    base = ["predict", "--model", "nuclei", "--dir", str(images)]
    assert main([*base, "--output", str(tmp_path / "here")]) == 0
    assert main([*base, "--output", str(tmp_path / "dask"), "--dask", "--dask_workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "Dask: 2 worker(s), dashboard http" in out and "wrote 3 mask file(s)" in out
    names = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask").iterdir()) and len(names) == 3
    for name in names:
        here, there = read_mask(tmp_path / "here" / name), read_mask(tmp_path / "dask" / name)
        assert np.array_equal(here, there) and here.max() > 3

    # a run killed after its first image: one finished file and a half-written temporary
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(tmp_path / "here" / names[0], killed / names[0])
    stale = killed / f".{names[1]}.{'0' * 8}.tmp.tif"
    stale.write_bytes(b"half a tiff")
    kept = (killed / names[0]).stat().st_mtime_ns
    assert main([*base, "--output", str(killed)]) == 2  # refused: nothing replaced
    assert "--resume to keep them" in capsys.readouterr().err
    assert main([*base, "--output", str(killed), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 image(s) whose files exist (--resume)" in out
    assert "wrote 2 mask file(s)" in out
    assert (killed / names[0]).stat().st_mtime_ns == kept  # not computed twice
    assert sorted(p.name for p in killed.iterdir()) == names  # the temporary is gone
    for name in names:
        assert np.array_equal(read_mask(killed / name), read_mask(tmp_path / "here" / name))


def test_the_cli_segments_a_huge_image_and_refuses_to_replace_its_result(huge, capsys):
    root, whole = huge
    out = root / "cli"
    argv = ["predict", "--model", "nuclei", "--diameter", "0", "--image", str(root / "scan.tif")]
    argv += ["--output", str(out), "--chunk", "512"]
    assert main(argv) == 0
    dest = out / "scan_masks.ome.zarr"
    assert f"wrote {dest}" in capsys.readouterr().out
    assert zarr.open_group(str(dest), mode="r")["s0"].chunks == (512, 512)
    assert np.array_equal(read_label_zarr(dest), whole)
    before = sorted(str(p) for p in dest.rglob("*"))
    assert main(argv) == 2
    assert "already exists and would be replaced" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "(--resume)" in capsys.readouterr().out
    assert sorted(str(p) for p in dest.rglob("*")) == before


def test_an_interrupted_huge_image_leaves_no_label_image_and_no_temporary(huge):
    root, _ = huge
    calls = []

    def failing(function, items, shared):
        calls.append(function)
        if len(calls) == 3:  # in the middle of the run (the linking pass)
            raise KeyboardInterrupt
        return [function(item, shared) for item in items]

    with pytest.raises(KeyboardInterrupt):
        segment_chunked(root / "plain.zarr", root / "stopped.ome.zarr", CONFIG, mapper=failing)
    assert not any(p.name.startswith((".stopped", "stopped")) for p in root.iterdir())


@pytest.mark.parametrize(
    ("shape", "attrs", "message"),
    [
        ((3, 64, 64), None, "without axis names; cellseg needs to know which axes are y, x"),
        ((3, 64, 64), ["z", "y", "x"], "hold more than one 2D image (axis 'z')"),
        ((64, 64), ["c", "x"], "do not name one y and one x axis"),
    ],
)
def test_a_zarr_without_the_axes_of_an_image_is_refused_by_name(tmp_path, shape, attrs, message):
    path = tmp_path / "bad.zarr"
    array = zarr.create_array(str(path), shape=shape, chunks=shape, dtype="f4")
    if attrs:
        array.attrs["_ARRAY_DIMENSIONS"] = attrs
    with pytest.raises(CellsegError, match="bad.zarr") as err:
        open_chunked(path)
    assert message in str(err.value)


def test_a_label_image_is_written_atomically(tmp_path):
    dest = tmp_path / "m.ome.zarr"
    with pytest.raises(RuntimeError), write_label_zarr(dest, (64, 64), (32, 32)) as out:
        out.array[:32, :32] = 5
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with write_label_zarr(dest, (64, 64), (32, 32)) as out:
        out.array[:32, :32] = 5
        assert not dest.exists()
    assert read_label_zarr(dest)[:32, :32].tolist() == np.full((32, 32), 5).tolist()
