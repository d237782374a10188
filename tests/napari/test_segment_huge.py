"""The Segment widget on a multiscale OME-Zarr image layer: segmented from its file, block by
block, into a new label Zarr beside it, shown lazily; nothing replaced, nothing left on Stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels

from napari_cellseg import synth
from napari_cellseg.io.images.chunked import read_label_zarr
from napari_cellseg.napari.segment import SegmentWidget
from napari_cellseg.napari.segment.huge import Blocks
from napari_cellseg.predict import predict_frames, results
from napari_cellseg.predict.config import PredictConfig
from napari_cellseg.predict.segmenter import cached_segmenter

TIMEOUT_MS = 180_000
#: Four 1024-pixel blocks (256-pixel chunks), nuclei across the seams.
SHAPE = (1100, 1060)


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A multiscale OME-Zarr nuclei image, its truth, and the labels of the whole image."""
    from ome_zarr.writer import write_image

    root = tmp_path_factory.mktemp("plate")
    image, truth = synth.nuclei(SHAPE, seed=3)
    image = image.astype(np.float32)
    group = zarr.open_group(str(root / "plate.ome.zarr"), mode="w")
    write_image(image[None], group, axes="cyx", storage_options={"chunks": (1, 256, 256)})
    config = PredictConfig(model="nuclei", diameter=0)
    seg = cached_segmenter(config)
    frames = seg.prepare(image, channel_axis=None, source="plate")
    whole = results(predict_frames(seg, frames, config.params_for(seg.arch)))[0].labels
    return root / "plate.ome.zarr", truth, whole


@pytest.fixture
def opened(viewer, plate, tmp_path) -> tuple[SegmentWidget, Path]:  # noqa: ANN001 - viewer proxy
    """The plate (a copy in this test's folder) opened with the plugin's reader, and the widget."""
    import shutil

    source = tmp_path / "plate.ome.zarr"
    shutil.copytree(plate[0], source)
    (layer,) = viewer.open(str(source), plugin="napari-cellseg")
    assert isinstance(layer, Image) and layer.multiscale and len(layer.data) > 1
    assert layer.data[0].shape == SHAPE and not isinstance(layer.data[0], np.ndarray)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.set_model("nuclei")
    widget.set_image(layer.name)
    return widget, source


def _results(viewer) -> list[Labels]:  # noqa: ANN001 - napari viewer proxy
    return [layer for layer in viewer.layers if isinstance(layer, Labels)]


def test_a_multiscale_zarr_layer_is_segmented_from_its_file_into_a_new_label_zarr(
    qtbot, viewer, opened, plate, notes
) -> None:
    from napari_cellseg.metrics import evaluate_pair

    widget, source = opened
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)

    dest = source.parent / "plate_masks.ome.zarr"
    (layer,) = _results(viewer)
    assert isinstance(layer.data, zarr.Array) and layer.data.shape == SHAPE  # read as drawn
    assert np.array_equal(read_label_zarr(dest), plate[2])  # the whole image's labels, ids too
    scores = evaluate_pair(plate[1], read_label_zarr(dest))
    assert scores["ap_50"] >= 0.9 and scores["n_pred"] > 200
    assert any(str(dest) in message for _, message in notes)

    widget.run()  # again: a second file, the first untouched
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    assert (source.parent / "plate-2_masks.ome.zarr").is_dir()
    assert np.array_equal(read_label_zarr(dest), plate[2]) and len(_results(viewer)) == 2
    assert sorted(p.name for p in source.parent.iterdir() if p.name.startswith(".")) == []

    (reopened,) = viewer.open(str(dest), plugin="napari-cellseg")
    assert isinstance(reopened, Labels) and np.array_equal(np.asarray(reopened.data), plate[2])


def test_stop_ends_a_run_from_a_file_at_the_next_block_and_leaves_nothing(
    qtbot, viewer, opened
) -> None:
    widget, source = opened
    before = sorted(p.name for p in source.parent.iterdir())
    widget.run()
    widget._worker.yielded.connect(
        lambda event: widget.stop() if isinstance(event, Blocks) else None
    )
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
    qtbot.waitUntil(
        lambda: sorted(p.name for p in source.parent.iterdir()) == before, timeout=10_000
    )

    assert _results(viewer) == [] and "Stopped" in widget._status.text()


def test_a_multiscale_layer_held_in_memory_is_refused_with_a_message(viewer, notes) -> None:  # noqa: ANN001
    image = synth.nuclei((256, 256), seed=0)[0]
    viewer.add_image([image, image[::2, ::2]], multiscale=True, name="pyramid")
    widget = SegmentWidget(viewer)
    widget.set_model("nuclei")
    widget.set_image("pyramid")
    widget.run()
    assert not widget.busy and _results(viewer) == []
    assert any("'pyramid' is multiscale and was not opened from a file" in m for _, m in notes)
