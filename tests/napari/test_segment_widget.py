"""The Segment widget in a real napari viewer: models, images, stacks, parameters, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels

from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._frames import layer_frames
from napari_cellseg.napari._session_models import SessionModel, session_models
from napari_cellseg.napari.segment import RESULT_KEY, SegmentWidget
from napari_cellseg.napari.segment.results import CONTOUR

TIMEOUT_MS = 60_000


def discs(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small image of bright discs on noise and its exact labels (used by the Train tests)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    n = 0
    for cy in range(10, size - 6, 18):
        for cx in range(10, size - 6, 18):
            y, x = cy + rng.integers(-1, 2), cx + rng.integers(-1, 2)
            n += 1
            labels[(yy - y) ** 2 + (xx - x) ** 2 <= rng.integers(25, 40)] = n
    image = (labels > 0) * 1.0 + rng.normal(0, 0.15, labels.shape)
    return image.astype(np.float32), labels


def untrained_model(
    path: Path, *, nchan: int = 1, arch: str = "omni", diameter: float = 0.0
) -> Path:
    """A small model file with random weights (fast: no training)."""
    import torch

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.models import build_model
    from napari_cellseg.models.checkpoint import save_checkpoint
    from napari_cellseg.train import checkpoint_meta, model_spec

    config = TrainConfig(architecture=arch, nchan=nchan, nbase=(8, 16, 32), diameter=diameter)
    spec = model_spec(config)
    torch.manual_seed(0)
    save_checkpoint(path, build_model(spec), spec, checkpoint_meta(config), epoch=0)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_model(tmp_path_factory.mktemp("models") / "tiny_omni.pt")


@pytest.fixture
def segment(viewer, model_file: Path) -> SegmentWidget:  # noqa: ANN001 - napari viewer proxy
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.add_model_file(model_file)
    return widget


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the network passes (one per frame) and of the reconstructions."""
    from napari_cellseg.predict import Segmenter

    counts = {"network_steps": 0, "reconstruct": 0}
    for name in counts:
        original = getattr(Segmenter, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):  # noqa: ANN001, ANN002, ANN003
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Segmenter, name, counted)
    return counts


def _run(qtbot, widget: SegmentWidget) -> None:  # noqa: ANN001 - pytest-qt fixture
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)


def _results(viewer) -> list[Labels]:  # noqa: ANN001 - napari viewer proxy
    return [
        layer
        for layer in viewer.layers
        if isinstance(layer, Labels) and RESULT_KEY in layer.metadata
    ]


def test_a_2d_image_gives_a_labels_layer_of_its_shape(qtbot, viewer, segment, calls) -> None:
    viewer.add_image(discs(80)[0], name="cells")
    segment.set_image("cells")

    _run(qtbot, segment)

    (result,) = _results(viewer)
    assert result.data.shape == (80, 80)
    assert np.issubdtype(result.data.dtype, np.integer)
    assert result.contour == CONTOUR  # outlines: the image and any ground truth show through
    assert calls["network_steps"] == 1
    assert segment.parameters.arch == "omni"


def test_a_stack_is_segmented_frame_by_frame(qtbot, viewer, segment, calls) -> None:
    stack = np.stack([discs(64, seed)[0] for seed in range(3)])
    viewer.add_image(stack, name="movie")
    segment.set_image("movie")

    _run(qtbot, segment)

    (result,) = _results(viewer)
    assert result.data.shape == (3, 64, 64)
    assert calls["network_steps"] == 3


def test_a_parameter_change_reruns_only_the_reconstruction(qtbot, viewer, segment, calls) -> None:
    viewer.add_image(discs(64)[0], name="cells")
    segment.set_image("cells")
    _run(qtbot, segment)
    (result,) = _results(viewer)
    before = calls["reconstruct"]

    segment.parameters.set_value("min_size", 200)  # debounced, then reconstructed in a worker
    qtbot.waitUntil(lambda: calls["reconstruct"] > before, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not segment.busy, timeout=TIMEOUT_MS)
    segment.run()  # the same model and image again: the cached outputs are reused
    qtbot.waitUntil(lambda: not segment.busy, timeout=TIMEOUT_MS)

    assert calls["network_steps"] == 1
    assert calls["reconstruct"] == before + 2
    assert _results(viewer) == [result]


def test_a_cell_diameter_resizes_the_image_for_the_network_and_back(
    qtbot, viewer, tmp_path, monkeypatch
) -> None:
    from napari_cellseg.predict import Segmenter

    seen: list[tuple[int, ...]] = []
    original = Segmenter._tiled

    def spy(self, image):  # noqa: ANN001 - a generator of tile progress, like _tiled
        seen.append(image.shape)
        return original(self, image)

    monkeypatch.setattr(Segmenter, "_tiled", spy)
    widget = SegmentWidget(viewer)
    widget.add_model_file(untrained_model(tmp_path / "d30.pt", diameter=30.0))
    viewer.add_image(discs(64)[0], name="cells")
    widget.set_image("cells")

    _run(qtbot, widget)  # "as is"
    widget.set_diameter(15.0)  # cells half the size the model knows: the image is doubled
    _run(qtbot, widget)

    assert seen == [(1, 64, 64), (1, 128, 128)]
    (result,) = _results(viewer)
    assert result.data.shape == (64, 64)


def test_wrong_channel_count_is_a_notification_and_adds_nothing(
    qtbot, viewer, tmp_path, notes
) -> None:
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.add_model_file(untrained_model(tmp_path / "two_channels.pt", nchan=2))
    viewer.add_image(discs(64)[0], name="grey")
    widget.set_image("grey")
    n_layers = len(viewer.layers)

    _run(qtbot, widget)

    assert len(viewer.layers) == n_layers
    assert any("1 channel(s) but the model takes 2" in message for message in notes.errors())


def test_an_empty_image_is_refused_with_a_message() -> None:
    with pytest.raises(CellsegError, match="empty"):
        layer_frames(np.zeros((0, 64)), False, 1, source="nothing")


def test_models_trained_in_the_session_are_listed(viewer, tmp_path) -> None:
    widget = SegmentWidget(viewer)
    path = untrained_model(tmp_path / "session.pt").resolve()
    try:
        session_models.add(SessionModel("session", path, "omni", 1))
        assert str(path) in widget.models
        assert widget.parameters.arch == "omni"
    finally:
        session_models.clear()


@pytest.fixture
def nuclei_widget(viewer) -> SegmentWidget:  # noqa: ANN001 - napari viewer proxy
    """The Segment widget with the built-in ``nuclei`` model and a synthetic nuclei image."""
    from napari_cellseg import synth

    image, truth = synth.nuclei((192, 192), seed=1)
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(truth, name="truth")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.set_model("nuclei")
    widget.set_image("nuclei")
    return widget


def test_the_result_layer_holds_the_cells_of_the_image(qtbot, viewer, nuclei_widget) -> None:
    from napari_cellseg.metrics import evaluate_pair

    _run(qtbot, nuclei_widget)

    (result,) = _results(viewer)
    truth = viewer.layers["truth"].data
    scores = evaluate_pair(truth, np.asarray(result.data))
    assert scores["n_pred"] == scores["n_gt"] == int(truth.max()) > 5
    assert scores["ap_50"] >= 0.9 and scores["mean_matched_iou"] > 0.8


def test_a_users_edits_to_a_result_survive_a_new_reconstruction(
    qtbot, viewer, nuclei_widget, notes
) -> None:
    _run(qtbot, nuclei_widget)
    (result,) = _results(viewer)
    result.data_setitem((np.arange(5, 15), np.arange(5, 15)), np.full(10, 99))  # a correction
    corrected = np.asarray(result.data).copy()

    nuclei_widget.parameters.set_value("min_size", 50)  # reconstruction only, in a worker
    qtbot.waitUntil(lambda: len(_results(viewer)) == 2, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not nuclei_widget.busy, timeout=TIMEOUT_MS)

    np.testing.assert_array_equal(result.data, corrected)  # the edited layer is left alone
    new = next(layer for layer in _results(viewer) if layer is not result)
    assert new.data.max() > 5 and not (np.asarray(new.data) == 99).any()
    assert any(f"'{result.name}' holds your edits" in message for _, message in notes)
    result.undo()  # and the user's own edit stays undoable
    assert not (np.asarray(result.data) == 99).any()


def test_stop_ends_the_run_at_the_next_tile_batch_and_adds_nothing(
    qtbot, viewer, segment, calls
) -> None:
    from napari_cellseg.predict import TileProgress

    viewer.add_image(np.stack([discs(64, seed)[0] for seed in range(20)]), name="movie")
    segment.set_image("movie")
    n_layers = len(viewer.layers)

    segment.run()
    segment._worker.yielded.connect(
        lambda event: segment.stop() if isinstance(event, TileProgress) else None
    )
    qtbot.waitUntil(lambda: not segment.busy, timeout=TIMEOUT_MS)

    assert len(viewer.layers) == n_layers
    assert calls["network_steps"] < 5, calls  # of 20 frames
    assert "Stopped" in segment._status.text()


def synth_nuclei() -> np.ndarray:
    from napari_cellseg import synth

    return synth.nuclei((128, 128), seed=0)[0]


def _add_synthetic(viewer, kind: str, seed: int = 0) -> str:  # noqa: ANN001 - napari viewer
    from napari_cellseg import synth

    viewer.add_image(getattr(synth, kind)((128, 128), seed=seed)[0], name=f"{kind} {seed}")
    return f"{kind} {seed}"


def test_the_model_offered_first_suits_the_image_and_shows_its_parameters(viewer) -> None:
    import dataclasses

    from napari_cellseg.families import get_family

    phase = _add_synthetic(viewer, "bacteria")
    widget = SegmentWidget(viewer)

    assert widget.model == "bacteria_phase"  # phase contrast: not the nuclei model
    omni = [f.name for f in dataclasses.fields(get_family("omni").Params)]
    assert widget.parameters.arch == "omni" and widget.parameters.names == omni  # not loaded
    nuclei = _add_synthetic(viewer, "nuclei")
    widget.set_image(nuclei)
    assert widget.model == "nuclei"
    widget.set_image(phase)
    assert widget.model == "bacteria_phase"


def test_the_model_chosen_last_in_the_session_is_offered_first(viewer) -> None:
    _add_synthetic(viewer, "bacteria")
    first = SegmentWidget(viewer)
    first.set_model("nuclei")  # the user knows better
    first.set_image(_add_synthetic(viewer, "bacteria", seed=1))
    assert first.model == "nuclei"

    assert SegmentWidget(viewer).model == "nuclei"
    first.set_model("bacteria_phase")
    viewer.add_image(synth_nuclei(), name="nuclei")  # a fluorescence image, selected
    assert SegmentWidget(viewer).model == "bacteria_phase"


def test_a_model_file_shows_its_family_from_the_yaml_beside_it(viewer, tmp_path) -> None:
    from napari_cellseg.napari.segment.widget import described_arch

    unet = untrained_model(tmp_path / "u.pt", arch="unet")
    assert described_arch(str(unet)) == "unet"
    assert described_arch("nuclei") == described_arch("bacteria_phase") == "omni"
    unet.with_suffix(".yaml").unlink()
    assert described_arch(str(unet)) is None  # known once loaded
    assert described_arch(str(tmp_path / "missing.pt")) is None
