"""The Train widget in a real napari viewer: pairing, QC gate, training, stopping, hand-over."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from napari.layers import Labels
from test_segment_widget import discs

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._session_models import session_models
from napari_cellseg.napari.segment import RESULT_KEY, SegmentWidget
from napari_cellseg.napari.train import PREVIEW_KEY, Pair, TrainWidget, pair_image
from napari_cellseg.napari.train.data import copy_pairs
from napari_cellseg.napari.train.defaults import (
    CPU_BUDGET_S,
    CPU_S_PER_MEGAPIXEL,
    DEFAULT_EPOCHS,
    DEFAULT_MODEL_DIR,
    MIN_EPOCHS,
    suggested_crop,
)
from napari_cellseg.napari.train.preview import PREVIEW_CONTOUR

TIMEOUT_MS = 90_000
BENCH = Path(__file__).resolve().parents[2] / "bench" / "ui_latency.py"


def _stall_meter():  # noqa: ANN202 - class from the benchmark script
    spec = importlib.util.spec_from_file_location("ui_latency", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StallMeter


@pytest.fixture
def train(viewer, tmp_path: Path) -> TrainWidget:  # noqa: ANN001 - napari viewer proxy
    """A docked Train widget with tiny, fast settings and a pair of layers."""
    image, labels = discs(64)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells_masks")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    options = {"n_epochs": 2, "batch_size": 2, "tyx": "64,64", "device": "cpu"}
    for name, value in options.items():
        widget.options.set_value(name, value)
    advanced = {"nbase": "8,16,32", "save_every": 1, "warmup_epochs": 0}
    for name, value in advanced.items():
        widget.advanced.set_value(name, value)
    widget.set_output(tmp_path / "model.pt")
    return widget


def test_labels_are_paired_with_images_by_name(viewer) -> None:
    assert pair_image("a_masks", ["a", "b"]) == "a"
    assert pair_image("b [labels]", ["a", "b"]) == "b"
    assert pair_image("Labels", ["a", "b"]) is None
    for name in ("a", "b"):
        viewer.add_image(np.zeros((16, 16)), name=name)
    for name in ("a_masks", "b [labels]", "Labels"):
        viewer.add_labels(np.zeros((16, 16), np.uint8), name=name)
    widget = TrainWidget(viewer)

    assert widget.pairs() == [
        Pair("a_masks", "a", "train", True),
        Pair("b [labels]", "b", "train", True),
        Pair("Labels", None, "train", False),
    ]
    widget.set_pairs([Pair("a_masks", "b", "validation", True), Pair("Labels", "a")])
    viewer.add_image(np.zeros((16, 16)), name="c")  # a new layer keeps the user's choices
    assert widget.pairs() == [
        Pair("a_masks", "b", "validation", True),
        Pair("b [labels]", "b", "train", True),  # every Labels layer has a row
        Pair("Labels", "a", "train", True),
    ]


def test_training_saves_a_model_that_the_segment_widget_lists_and_uses(
    qtbot, viewer, train
) -> None:
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    meter = _stall_meter()()
    meter.start()

    assert train.start()
    qtbot.waitUntil(lambda: not train.busy, timeout=TIMEOUT_MS)
    stall_ms = meter.stop()

    result = train.result
    assert result is not None and not result.stopped and result.epochs_done == 2
    assert Path(result.model_path).is_file()
    # the 100 ms target lives in bench/ui_latency.py; a viewer frozen by training fails here
    assert math.isfinite(stall_ms) and 0 < stall_ms < 1500
    previews = [layer for layer in viewer.layers if PREVIEW_KEY in layer.metadata]
    assert len(previews) == 1 and previews[0].data.shape == (64, 64)
    assert previews[0].contour == PREVIEW_CONTOUR  # outlines: the ground truth shows through
    assert str(Path(result.model_path).resolve()) in segment.models

    segment.set_image("cells")
    segment.run()
    qtbot.waitUntil(lambda: not segment.busy, timeout=TIMEOUT_MS)
    (labels,) = [layer for layer in viewer.layers if RESULT_KEY in layer.metadata]
    assert isinstance(labels, Labels) and labels.data.shape == (64, 64)


def test_the_stop_button_stops_and_keeps_the_last_good_checkpoint(qtbot, viewer, train) -> None:
    from qtpy.QtCore import Qt

    from napari_cellseg.models.checkpoint import load_model

    train.options.set_value("n_epochs", 200)
    epochs: list[int] = []
    assert not train._stop_button.isEnabled()
    assert train.start()
    assert train._stop_button.isEnabled()

    def click_after_two_epochs(event) -> None:  # noqa: ANN001 - a Progress event
        if getattr(event, "kind", None) == "epoch":
            epochs.append(event.epoch)
            if event.epoch == 2:
                qtbot.mouseClick(train._stop_button, Qt.MouseButton.LeftButton)

    train._worker.yielded.connect(click_after_two_epochs)
    qtbot.waitUntil(lambda: not train.busy, timeout=TIMEOUT_MS)

    assert train.result.stopped
    assert 2 <= train.result.epochs_done <= 3  # the click lands within a step or two
    assert not train._stop_button.isEnabled()
    model, checkpoint = load_model(train.result.model_path)  # the kept state loads and runs
    assert checkpoint.epoch == train.result.epochs_done
    with torch.no_grad():
        out = model(torch.zeros(1, 1, 64, 64))
    assert out.shape[-2:] == (64, 64) and torch.isfinite(out).all()
    assert [m.stopped for m in session_models.models()] == [True]


def test_a_semantic_mask_blocks_the_start_and_leads_to_the_qc_widget(viewer, train, notes) -> None:
    viewer.layers["cells_masks"].data = (viewer.layers["cells_masks"].data > 0).astype(np.uint8)

    assert not train.start()

    assert not train.busy
    assert any("not started" in message for message in notes.errors())
    qc = train.open_qc()
    assert qc.rows and {row.problem.check for row in qc.rows} >= {"semantic_mask"}


def test_labels_with_more_frames_than_the_image_block_the_start_at_the_qc_gate(
    viewer, train, notes, tmp_path
) -> None:
    labels = viewer.layers["cells_masks"].data
    viewer.layers.remove("cells_masks")
    viewer.add_labels(np.stack([labels] * 3), name="cells_masks")  # 3 frames for a 2D image
    train.set_pairs([Pair("cells_masks", "cells", "train", True)])

    assert not train.start()

    assert not train.busy
    (error,) = [m for m in notes.errors() if "blocking annotation problem" in m]
    assert "'cells_masks' has shape (3, 64, 64) but 'cells' holds 1 frame(s) of 64x64" in error
    assert not (tmp_path / "model.pt").exists()


def test_warnings_are_shown_and_the_user_may_go_on(qtbot, viewer, train, notes) -> None:
    labels = viewer.layers["cells_masks"].data.copy()
    labels[0:2, 60:62] = 1  # a 4-pixel fragment of label 1
    viewer.layers["cells_masks"].data = labels

    assert not train.start()
    assert notes.warnings()

    assert train.start(accept_warnings=True)
    train.stop()
    qtbot.waitUntil(lambda: not train.busy, timeout=TIMEOUT_MS)
    assert train.result.stopped


def test_stacks_train_frame_by_frame(qtbot, viewer, tmp_path) -> None:
    pairs = [discs(64, seed) for seed in range(3)]
    viewer.add_image(np.stack([image for image, _ in pairs]), name="movie")
    viewer.add_labels(np.stack([labels for _, labels in pairs]), name="movie_masks")
    widget = TrainWidget(viewer)
    widget.options.set_value("tyx", "64,64")

    data = copy_pairs(viewer.layers, widget.pairs(), widget.config())

    assert data.names == ["movie_masks[0]", "movie_masks[1]", "movie_masks[2]"]
    assert [frame.shape for frame in data.images] == [(64, 64)] * 3
    assert all(np.array_equal(a, b) for a, (_, b) in zip(data.labels, pairs))


def test_the_demo_viewer_docks_the_three_widgets_on_the_sample_data(own_viewer) -> None:
    from napari_cellseg.napari.demo import WIDGETS, make_demo_viewer

    viewer, docks = make_demo_viewer("nuclei", show=False)
    try:
        assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei_masks"]
        assert list(docks) == list(WIDGETS)
        assert isinstance(docks["Train"][1], TrainWidget)
        assert isinstance(docks["Segment"][1], SegmentWidget)
        assert docks["Train"][1].pairs() == [Pair("nuclei_masks", "nuclei", "train", True)]
    finally:
        viewer.close()


def test_an_existing_model_file_is_not_replaced_by_a_new_run(viewer, train, notes, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"a model trained yesterday")

    assert not train.start()

    assert not train.busy
    assert any("model.pt already exists and would be replaced" in m for m in notes.errors())
    assert (tmp_path / "model.pt").read_bytes() == b"a model trained yesterday"


def test_a_save_to_name_without_suffix_becomes_a_pt_file(viewer, train, tmp_path):
    train.set_output(tmp_path / "mine")
    assert train.config().model == str(tmp_path / "mine.pt")
    (tmp_path / "mine.pt").write_bytes(b"a model trained yesterday")
    with pytest.raises(CellsegError, match="mine.pt already exists"):
        train.config()


def test_the_preview_says_when_it_finds_no_cells_yet(qtbot, viewer, train) -> None:
    assert train.start()
    qtbot.waitUntil(lambda: not train.busy, timeout=TIMEOUT_MS)
    (preview,) = [layer for layer in viewer.layers if PREVIEW_KEY in layer.metadata]

    train._show_preview(np.zeros((64, 64), np.uint16), 3)
    assert "preview: no cells yet at epoch 3" in train._status.text()
    assert not preview.data.any()

    two = np.zeros((64, 64), np.uint16)
    two[2:6, 2:6], two[20:30, 20:30] = 1, 2
    train._show_preview(two, 4)
    assert "preview: 2 cells at epoch 4" in train._status.text()
    np.testing.assert_array_equal(preview.data, two)


def _synthetic(viewer, kind: str, name: str, shape=(128, 128), seed: int = 0) -> None:  # noqa: ANN001
    from napari_cellseg import synth

    image, labels = getattr(synth, kind)(shape, seed=seed)
    viewer.add_image(image, name=name)
    viewer.add_labels(labels, name=f"{name}_masks")


def test_only_pairs_like_the_selected_one_are_ticked(viewer) -> None:
    _synthetic(viewer, "bacteria", "colony")
    _synthetic(viewer, "nuclei", "nuclei")
    _synthetic(viewer, "bacteria", "colony2", seed=1)
    _synthetic(viewer, "bacteria", "big colony", shape=(160, 128), seed=2)
    viewer.layers.selection.active = viewer.layers["colony2_masks"]

    widget = TrainWidget(viewer)

    assert {pair.labels: pair.use for pair in widget.pairs()} == {
        "colony_masks": True,  # phase contrast of the same size and type, like colony2
        "nuclei_masks": False,  # fluorescence
        "colony2_masks": True,
        "big colony_masks": False,  # another frame size
    }
    _synthetic(viewer, "nuclei", "more nuclei", seed=3)  # like no ticked pair: not ticked
    _synthetic(viewer, "bacteria", "colony3", seed=4)
    ticked = {pair.labels for pair in widget.pairs() if pair.use}
    assert ticked == {"colony_masks", "colony2_masks", "colony3_masks"}


def test_the_first_selected_pair_decides_when_no_pair_is_ticked_yet(viewer) -> None:
    _synthetic(viewer, "bacteria", "colony")
    _synthetic(viewer, "nuclei", "nuclei")
    viewer.layers.selection.active = viewer.layers["nuclei"]

    widget = TrainWidget(viewer)

    assert [pair.use for pair in widget.pairs()] == [False, True]


def test_the_crop_is_the_largest_multiple_of_16_that_fits_up_to_224() -> None:
    assert suggested_crop([(100, 150)]) == 96
    assert suggested_crop([(500, 600), (230, 900)]) == 224
    assert suggested_crop([(256, 256), (130, 300)]) == 128
    assert suggested_crop([(10, 12)]) == 16  # smaller frames are padded


def test_crop_and_epochs_are_suggested_from_the_frames_and_the_device(viewer) -> None:
    stack = np.stack([discs(300, seed)[0] for seed in range(12)])
    viewer.add_image(stack, name="movie")
    viewer.add_labels(np.stack([discs(300, seed)[1] for seed in range(12)]), name="movie_masks")
    widget = TrainWidget(viewer)
    options = widget.options

    options.set_value("device", "cpu")

    # 12 frames: 12 crops of 224 x 224 per epoch, about 3 s each on a CPU
    epoch_s = 12 * 224 * 224 / 1e6 * CPU_S_PER_MEGAPIXEL
    assert options.values()["tyx"] == (224, 224)
    assert options.values()["n_epochs"] == int(CPU_BUDGET_S // epoch_s) == 59
    help_text = TrainConfig.__dataclass_fields__["n_epochs"].metadata["help"]
    assert options.editor("n_epochs").tooltip.startswith(help_text)
    assert "Suggested for a CPU: 59 epochs of 12 crops of 224 x 224" in (
        options.editor("n_epochs").tooltip
    )
    assert "smallest training frame side (300 px)" in options.editor("tyx").tooltip

    options.set_value("device", "cuda")  # a GPU: the default
    assert options.values()["n_epochs"] == DEFAULT_EPOCHS
    options.set_value("device", "cpu")
    options.set_value("n_epochs", 7)  # the user's value stays
    viewer.add_image(discs(100)[0], name="small")
    viewer.add_labels(discs(100)[1], name="small_masks")
    widget.set_pairs([*widget.pairs(), Pair("small_masks", "small", "train", True)])
    assert options.values()["n_epochs"] == 7
    assert options.values()["tyx"] == (96, 96)

    options.set_value("n_epochs", 59)  # back to the last suggestion: it follows the data again
    widget.set_pairs([Pair("small_masks", "small", "train", True)])
    assert options.values()["n_epochs"] == DEFAULT_EPOCHS  # 8 crops of 96 x 96: capped
    assert MIN_EPOCHS < 59 < DEFAULT_EPOCHS


def test_the_model_file_is_shown_before_start_and_follows_the_family(viewer, tmp_path) -> None:
    widget = TrainWidget(viewer)
    shown = Path(widget._output.value)

    assert shown.parent == DEFAULT_MODEL_DIR and shown.name.startswith("cellseg_omni_")
    assert widget._output_note.value == str(DEFAULT_MODEL_DIR)
    assert widget.config().model == str(shown)
    widget.options.set_value("architecture", "unet")
    assert Path(widget._output.value).name.startswith("cellseg_unet_")

    widget.set_output(tmp_path / "mine.pt")  # the user's choice stays
    widget.options.set_value("architecture", "omni")
    assert widget._output.value == tmp_path / "mine.pt"
    assert widget._output_note.value == str(tmp_path)
