"""The widgets' forms are generated from the config dataclasses, and the loss plot draws what
training reports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_segment_widget import discs, untrained_model

from napari_cellseg.config import TrainConfig
from napari_cellseg.families import get_family
from napari_cellseg.napari._session_models import SessionModel, session_models
from napari_cellseg.napari.segment import SegmentWidget
from napari_cellseg.napari.segment.form import INFERENCE
from napari_cellseg.napari.train import TrainWidget
from napari_cellseg.napari.train.form import HIDDEN, MAIN_OPTIONS
from napari_cellseg.napari.train.plot import LossPlot
from napari_cellseg.options import choices_of, default_of
from napari_cellseg.predict.config import PredictConfig

TIMEOUT_MS = 60_000


def test_every_train_option_is_in_the_train_form_with_its_default_and_help(viewer) -> None:
    widget = TrainWidget(viewer)
    shown = {**widget.options.values(), **widget.advanced.values()}

    assert widget.options.names == list(MAIN_OPTIONS)
    for f in dataclasses.fields(TrainConfig):
        if f.name in HIDDEN:
            assert f.name not in shown
            continue
        editor = (widget.options if f.name in MAIN_OPTIONS else widget.advanced).editor(f.name)
        assert shown[f.name] == default_of(f), f.name  # no layers: nothing to suggest from
        assert editor.tooltip == f.metadata["help"], f.name
        if choices_of(f):
            assert set(choices_of(f)) <= set(editor.choices), f.name
    # the options the widget sets itself carry their help too
    assert widget._folder.tooltip == TrainConfig.__dataclass_fields__["dir"].metadata["help"]
    assert widget._output.tooltip == TrainConfig.__dataclass_fields__["model"].metadata["help"]
    assert TrainConfig(**shown).to_dict() == TrainConfig().to_dict()


def test_train_form_values_parse_like_the_command_line(viewer) -> None:
    from napari_cellseg.errors import CellsegError

    widget = TrainWidget(viewer)
    widget.options.set_value("tyx", "64,64")
    widget.advanced.set_value("nbase", "8,16,32")
    widget.advanced.set_value("trim_method", "reflect")

    values = {**widget.options.values(), **widget.advanced.values()}
    assert values["tyx"] == (64, 64) and values["nbase"] == (8, 16, 32)
    assert values["trim_method"] == "reflect" and values["channel_axis"] is None
    widget.options.set_value("tyx", "60,60")
    with pytest.raises(CellsegError, match="tyx.*multiple of 8"):
        widget.options.values()


def test_the_segment_form_shows_the_inference_options_of_predict_config(viewer) -> None:
    widget = SegmentWidget(viewer)
    fields = {f.name: f for f in dataclasses.fields(PredictConfig)}

    assert widget.options == {name: default_of(fields[name]) for name in INFERENCE}
    assert set(widget._form["device"].choices) == set(choices_of(fields["device"]))
    for name in INFERENCE:
        assert widget._form[name].tooltip == fields[name].metadata["help"]


def test_the_segment_form_shows_the_family_parameters_and_keeps_them_per_family(
    viewer, tmp_path
) -> None:
    widget = SegmentWidget(viewer)
    for arch in ("omni", "unet"):
        session_models.add(SessionModel(arch, tmp_path / f"{arch}.pt", arch, 1))
    form = widget.parameters

    widget.set_model(tmp_path / "omni.pt")
    omni = get_family("omni").Params
    assert form.arch == "omni"
    assert form.names == [f.name for f in dataclasses.fields(omni)]
    assert form.values() == dataclasses.asdict(omni())
    assert form.values()["niter"] is None  # automatic
    for f in dataclasses.fields(omni):
        assert form._form.editor(f.name).tooltip == f.metadata["help"]
    form.set_value("min_size", 99)
    form.set_value("niter", 20)

    widget.set_model(tmp_path / "unet.pt")
    assert form.arch == "unet"
    assert form.values() == dataclasses.asdict(get_family("unet").Params())

    widget.set_model(tmp_path / "omni.pt")
    assert form.values()["min_size"] == 99 and form.values()["niter"] == 20
    assert form.snapshot()["unet"] == dataclasses.asdict(get_family("unet").Params())


def test_a_model_of_another_family_switches_the_form_once_loaded(qtbot, viewer, tmp_path) -> None:
    widget = SegmentWidget(viewer)
    viewer.add_image(discs(64)[0], name="cells")
    widget.set_image("cells")
    names = {}
    for arch in ("omni", "unet"):
        widget.add_model_file(untrained_model(tmp_path / f"{arch}.pt", arch=arch))
        widget.run()
        qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT_MS)
        names[widget.parameters.arch] = widget.parameters.names

    assert names == {
        arch: [f.name for f in dataclasses.fields(get_family(arch).Params)]
        for arch in ("omni", "unet")
    }


def test_the_loss_plot_labels_its_axes_and_draws_training_and_validation(qtbot) -> None:
    from napari_cellseg.train import Progress

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.clear(total_steps=6)
    for step, loss in enumerate((1.0, 0.8, 0.6), start=1):
        plot.add(Progress("step", 1, 2, step, 6, loss))
    plot.add(Progress("epoch", 1, 2, 3, 6, 0.8, val_loss=0.9))
    plot.add(Progress("step", 2, 2, 4, 6, float("nan")))  # a diverged step is not drawn
    plot.add(Progress("epoch", 2, 2, 6, 6, 0.5, val_loss=0.7))
    plot.redraw()

    assert plot.axes.get_xlabel() == "optimiser step"
    assert plot.axes.get_ylabel() == "loss"
    lines = {line.get_label(): line for line in plot.axes.get_lines()}
    legend = [text.get_text() for text in plot.axes.get_legend().get_texts()]
    assert legend == list(lines)
    step_line = lines["training (per step)"]
    np.testing.assert_array_equal(step_line.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(step_line.get_ydata(), [1.0, 0.8, 0.6])
    np.testing.assert_array_equal(lines["training (epoch mean)"].get_xdata(), [3, 6])
    np.testing.assert_array_equal(lines["training (epoch mean)"].get_ydata(), [0.8, 0.5])
    np.testing.assert_array_equal(lines["validation"].get_ydata(), [0.9, 0.7])
    assert plot.axes.get_xlim() == (0, 6)
    low, high = plot.axes.get_ylim()
    assert low < 0.5 and high > 1.0


def _legend(plot: LossPlot) -> list[str]:
    return [text.get_text() for text in plot.axes.get_legend().get_texts()]


def test_the_validation_curve_and_its_legend_entry_appear_with_validation_data(qtbot) -> None:
    from napari_cellseg.train import Progress

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.clear(total_steps=4)
    training = ["training (per step)", "training (epoch mean)"]
    assert _legend(plot) == training
    assert plot.axes.get_ylim() == (0, 1)  # nothing yet: a plain range

    plot.add(Progress("step", 1, 2, 1, 4, 1.0))
    plot.add(Progress("epoch", 1, 2, 2, 4, 0.9))  # no validation pairs
    plot.redraw()
    lines = {line.get_label(): line for line in plot.axes.get_lines()}
    assert _legend(plot) == training
    assert not lines["validation"].get_visible()

    plot.add(Progress("epoch", 2, 2, 4, 4, 0.7, val_loss=0.8))
    plot.redraw()
    assert _legend(plot) == [*training, "validation"]
    assert lines["validation"].get_visible()
    np.testing.assert_array_equal(lines["validation"].get_ydata(), [0.8])

    plot.clear(total_steps=4)  # a new run without validation
    assert _legend(plot) == training
