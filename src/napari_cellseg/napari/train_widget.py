"""Train dock widget: train a model on pairs of Image + Labels layers or on a dataset folder.

The widget is thin: the options are the fields of :class:`napari_cellseg.config.TrainConfig`
(defaults, help and choices read from it), the samples come from
:func:`napari_cellseg.train.samples.make_items`, the annotations are checked with
:func:`napari_cellseg.qc.run_qc`, and the training loop is the generator
:func:`napari_cellseg.train.train` run in a napari thread worker. Layer data are copied before
the worker starts; the worker never reads or writes a layer, and layers change only in the
main-thread slots. Stopping sets an event that the generator checks after each step; it then
saves the last good checkpoint. Torch is imported by the worker, never at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import math
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._edits import current_links
from napari_cellseg.napari._layers import frame_links
from napari_cellseg.napari._session_models import SessionModel, session_models
from napari_cellseg.napari.segment_widget import Frame, core_ready, layer_frames, preload_core
from napari_cellseg.options import choices_of
from napari_cellseg.qc import run_qc

if TYPE_CHECKING:
    import napari.viewer

    from napari_cellseg.train import Progress, TrainResult

#: Options shown on top, in this order; every other field except :data:`HIDDEN` is "advanced".
MAIN_OPTIONS = ("architecture", "n_epochs", "learning_rate", "batch_size", "tyx", "device")
#: Options the widget sets itself (data, output, start model) or that are CLI spellings.
HIDDEN = (
    "dir",
    "test_dir",
    "pretrained_model",
    "model",
    "resume",
    "args_load_path",
    "RAdam",
    "use_gpu",
    "all_channels",
    "dataloader",
    "num_workers",
)
#: Label-layer name endings that point at the image layer they annotate (``X_masks`` -> ``X``).
LABEL_SUFFIXES = ("_masks", " [labels]", "_labels", "_mask")
#: Metadata key of the preview layer (value: the name of the previewed image).
PREVIEW_KEY = "cellseg_training_preview"
#: Least time between two previews (seconds): each one costs a segmentation in the worker.
PREVIEW_MIN_S = 5.0
#: Least time between two redraws of the progress text and the loss plot (seconds).
REDRAW_S = 0.1
#: Where models go when no output file is given.
DEFAULT_MODEL_DIR = Path.home() / "cellseg-models"
SCRATCH = "scratch (random weights)"
ROLES = ("train", "validation")


def pair_image(labels_name: str, image_names: Iterable[str]) -> str | None:
    """The Image layer a Labels layer annotates, by name: ``X_masks``/``X [labels]`` -> ``X``.

    Parameters
    ----------
    labels_name
        Name of a Labels layer.
    image_names
        Names of the Image layers.

    Returns
    -------
    str or None
        The matching image name, or None.
    """
    names = set(image_names)
    for suffix in LABEL_SUFFIXES:
        if labels_name.endswith(suffix) and labels_name[: -len(suffix)] in names:
            return labels_name[: -len(suffix)]
    return None


# ---------------------------------------------------------------------- options from TrainConfig
def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


class OptionForm(QWidget):
    """Editors for some :class:`TrainConfig` fields, generated from their type and metadata.

    Booleans get a check box, fields with ``choices`` a combo box, ``int``/``float`` spin boxes
    and everything else (sizes like ``224,224``, optional values) a line edit parsed like the
    command line. Tooltips are the fields' help texts.

    Parameters
    ----------
    names
        Field names, in display order.
    """

    def __init__(self, names: Iterable[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._editors: dict[str, QWidget] = {}
        fields = _fields()
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for name in names:
            f = fields[name]
            editor = _editor(f)
            editor.setToolTip(f.metadata["help"])
            self._editors[name] = editor
            form.addRow(name.replace("_", " "), editor)

    def editor(self, name: str) -> QWidget:
        """The editor of one option."""
        return self._editors[name]

    def set_value(self, name: str, value: Any) -> None:
        """Show a value in one option's editor."""
        editor = self._editors[name]
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            editor.setCurrentText("" if value is None else str(value))
        elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.setValue(value)
        else:
            shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
            editor.setText("" if shown is None else str(shown))

    def values(self) -> dict[str, Any]:
        """The options as ``TrainConfig`` keyword arguments.

        Raises
        ------
        CellsegError
            For text that does not parse, naming the option.
        """
        fields = _fields()
        out: dict[str, Any] = {}
        for name, editor in self._editors.items():
            if isinstance(editor, QCheckBox):
                out[name] = editor.isChecked()
            elif isinstance(editor, QComboBox):
                out[name] = editor.currentText() or None
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                out[name] = editor.value()
            else:
                out[name] = _parse(fields[name], editor.text().strip())
        return out


def _editor(f: dataclasses.Field) -> QWidget:
    default, kind = _default(f), str(f.type)
    if isinstance(default, bool):
        box = QCheckBox()
        box.setChecked(default)
        return box
    if choices_of(f):
        combo = QComboBox()
        combo.addItems(([""] if default is None else []) + list(choices_of(f)))
        combo.setCurrentText(default or "")
        return combo
    if kind == "int":
        spin = QSpinBox()
        spin.setRange(0, 1_000_000_000)
        spin.setValue(default)
        return spin
    if kind == "float":
        dspin = QDoubleSpinBox()
        dspin.setDecimals(6 if 0 < default < 0.01 else 3)
        dspin.setRange(0.0, 1e6)
        dspin.setSingleStep(default / 2 if 0 < default < 0.01 else 0.1)
        dspin.setValue(default)
        return dspin
    line = QLineEdit(",".join(map(str, default)) if isinstance(default, tuple) else default or "")
    if default is None:
        line.setPlaceholderText("default")
    return line


def _parse(f: dataclasses.Field, text: str) -> Any:
    kind = str(f.type)
    if not text:
        if "None" in kind or kind == "str":
            return None if "None" in kind else ""
        raise CellsegError(f"option '{f.name}' needs a value ({f.metadata['help']})")
    convert = f.metadata.get("type") or (int if kind.startswith("int") else str)
    try:
        return convert(text)
    except (argparse.ArgumentTypeError, ValueError) as err:
        raise CellsegError(f"option '{f.name}': {err}") from None


# ---------------------------------------------------------------------- loss plot
class LossPlot(QWidget):
    """A small QPainter plot of the training loss (per step and per epoch) and validation loss.

    A log scale is used when the losses span more than a factor of 20.
    """

    COLORS = {"step": "#5a6270", "train": "#3d9df2", "validation": "#f2a33d"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(130)
        self.clear()

    def clear(self, total_steps: int = 1) -> None:
        """Forget the curves; the x axis will go to ``total_steps``."""
        self.steps: list[tuple[int, float]] = []
        self.train: list[tuple[int, float]] = []
        self.validation: list[tuple[int, float]] = []
        self.total_steps = max(total_steps, 1)
        self.update()

    def add(self, event: Progress) -> None:
        """Add a training event (the plot repaints on the next :meth:`update`)."""
        self.total_steps = max(event.total_steps, 1)
        if not math.isfinite(event.loss):
            return
        if event.kind == "step":
            self.steps.append((event.step, event.loss))
            return
        self.train.append((event.step, event.loss))
        if event.val_loss is not None and math.isfinite(event.val_loss):
            self.validation.append((event.step, event.val_loss))

    def paintEvent(self, _: Any) -> None:  # noqa: N802 - Qt API
        """Draw the axes, the curves, the range of the y axis and a legend."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#1d2027"))
        left, top, right, bottom = 44, 8, self.width() - 8, self.height() - 18
        painter.setPen(QPen(QColor("#6b7280")))
        painter.drawRect(left, top, right - left, bottom - top)
        values = [v for curve in (self.steps, self.train, self.validation) for _, v in curve]
        if not values:
            painter.drawText(left + 6, top + 18, "the loss appears here during training")
            painter.end()
            return
        low, high = min(values), max(values)
        log = low > 0 and high / low > 20
        f = math.log10 if log else float
        y0, y1 = f(low), f(high)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5

        def point(step: int, value: float) -> QPointF:
            x = left + (right - left) * step / self.total_steps
            y = bottom - (bottom - top) * (f(value) - y0) / (y1 - y0)
            return QPointF(x, y)

        for name, curve, width in (
            ("step", self.steps[-4 * max(self.width(), 1) :], 1),
            ("train", self.train, 2),
            ("validation", self.validation, 2),
        ):
            if curve:
                painter.setPen(QPen(QColor(self.COLORS[name]), width))
                painter.drawPolyline(QPolygonF([point(s, v) for s, v in curve]))
        painter.setPen(QPen(QColor("#d1d5db")))
        painter.drawText(2, top + 10, f"{high:.3g}")
        painter.drawText(2, bottom, f"{low:.3g}")
        legend = "loss" + (" (log scale)" if log else "")
        painter.drawText(left, self.height() - 4, f"{legend}, {self.total_steps} steps")
        x = right - 150
        for name in ("train", "validation"):
            painter.setPen(QPen(QColor(self.COLORS[name]), 2))
            painter.drawLine(x, self.height() - 8, x + 14, self.height() - 8)
            painter.setPen(QPen(QColor("#d1d5db")))
            painter.drawText(x + 18, self.height() - 4, name)
            x += 70
        painter.end()


# ---------------------------------------------------------------------- data handed to the worker
@dataclass
class TrainData:
    """Copies of the layer data (or a folder) for one training run; no layer references.

    Attributes
    ----------
    images, labels, names, links
        Training frames: raw image frames (``(Y, X)``, ``(Y, X, C)`` or ``(C, Y, X)``), label
        frames, sample names and links, as
        :func:`napari_cellseg.train.samples.make_items` takes them.
    val_images, val_labels, val_names, val_links
        The same for validation.
    """

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    links: list[Any] = field(default_factory=list)
    val_images: list[np.ndarray] = field(default_factory=list)
    val_labels: list[np.ndarray] = field(default_factory=list)
    val_names: list[str] = field(default_factory=list)
    val_links: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Preview:
    """A segmentation of the preview frame by the model of an epoch (yielded by the worker)."""

    epoch: int
    labels: np.ndarray


@dataclass
class Pair:
    """One row of the pairs table: a Labels layer, its Image layer and its role."""

    labels: str
    image: str | None
    role: str = "train"
    use: bool = True


# ---------------------------------------------------------------------- the widget
class TrainWidget(QWidget):
    """Train a segmentation model on layer pairs or a dataset folder, with live feedback.

    Parameters
    ----------
    napari_viewer
        The viewer this widget is docked in (injected by napari).
    parent
        Optional Qt parent.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._worker: Any = None
        self._stop = threading.Event()
        self._progress: cancelable_progress | None = None
        self._preview_target: tuple[str, dict[str, Any]] | None = None
        self._last_redraw = 0.0
        self._qc_labels: tuple[str, str | None] | None = None
        self._files: list[str] = []
        self._table_images: list[str] = []
        self._preview_note = ""
        self._arch = ""
        self.result: TrainResult | None = None

        # data: layer pairs or a folder
        self._layers_radio = QRadioButton("Layers")
        self._folder_radio = QRadioButton("Folder")
        self._layers_radio.setChecked(True)
        source = QButtonGroup(self)
        source.addButton(self._layers_radio)
        source.addButton(self._folder_radio)
        self._layers_radio.toggled.connect(self._on_source_changed)
        self._table = QTableWidget(0, 4)
        self._table.setHorizontalHeaderLabels(["", "Labels", "Image", "Role"])
        self._table.verticalHeader().setVisible(False)
        header = self._table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self._table.setToolTip(
            "Each ticked Labels layer is trained on with its Image layer (paired by name: "
            "X_masks or 'X [labels]' -> X). Stacks: every frame is a sample."
        )
        self._folder_edit = QLineEdit()
        self._folder_edit.setPlaceholderText("training folder (Omnipose, DeLTA, CLB or CTC)")
        self._folder_edit.setToolTip(_fields()["dir"].metadata["help"])
        folder_button = QPushButton("…")
        folder_button.clicked.connect(self._browse_folder)
        self._folder_row = QWidget()
        folder_layout = QHBoxLayout(self._folder_row)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        folder_layout.addWidget(self._folder_edit, 1)
        folder_layout.addWidget(folder_button)
        self._folder_row.setVisible(False)
        source_row = QHBoxLayout()
        source_row.addWidget(QLabel("Train on"))
        source_row.addWidget(self._layers_radio)
        source_row.addWidget(self._folder_radio)
        source_row.addStretch(1)

        # options
        self._options = OptionForm(MAIN_OPTIONS)
        self._start_combo = QComboBox()
        self._start_combo.setToolTip(_fields()["pretrained_model"].metadata["help"])
        start_file = QPushButton("File…")
        start_file.setToolTip("Fine-tune a model file")
        start_file.clicked.connect(self._browse_start_model)
        start_row = QHBoxLayout()
        start_row.addWidget(self._start_combo, 1)
        start_row.addWidget(start_file)
        self._output_edit = QLineEdit()
        self._output_edit.setPlaceholderText(f"{DEFAULT_MODEL_DIR}/cellseg_<family>_<time>.pt")
        self._output_edit.setToolTip(_fields()["model"].metadata["help"])
        output_button = QPushButton("…")
        output_button.clicked.connect(self._browse_output)
        output_row = QHBoxLayout()
        output_row.addWidget(self._output_edit, 1)
        output_row.addWidget(output_button)
        top_form = QFormLayout()
        top_form.addRow("Start from", start_row)
        top_form.addRow("Save to", output_row)
        advanced_names = [n for n in _fields() if n not in MAIN_OPTIONS and n not in HIDDEN]
        self._advanced = OptionForm(advanced_names)
        self._advanced.setVisible(False)
        self._advanced_button = QToolButton()
        self._advanced_button.setText("Advanced options")
        self._advanced_button.setCheckable(True)
        self._advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self._advanced_button.toggled.connect(self._toggle_advanced)
        self._preview_check = QCheckBox("Preview on the active image")
        self._preview_check.setChecked(True)
        self._preview_check.setToolTip(
            "Each time the model is saved (every 'save every' epochs), segment the active image "
            "(the current frame of a stack) with it into a 'training preview' layer"
        )

        # QC findings
        self._qc_label = QLabel()
        self._qc_label.setWordWrap(True)
        self._qc_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._qc_button = QPushButton("Open Annotation QC")
        self._qc_button.clicked.connect(self.open_qc)
        self._anyway_button = QPushButton("Train anyway")
        self._anyway_button.clicked.connect(lambda: self.start(accept_warnings=True))
        qc_buttons = QHBoxLayout()
        qc_buttons.addWidget(self._qc_button)
        qc_buttons.addWidget(self._anyway_button)
        self._qc_panel = QWidget()
        qc_layout = QVBoxLayout(self._qc_panel)
        qc_layout.setContentsMargins(0, 0, 0, 0)
        qc_layout.addWidget(self._qc_label)
        qc_layout.addLayout(qc_buttons)
        self._qc_panel.setVisible(False)

        # run
        self._start_button = QPushButton("Start training")
        self._start_button.clicked.connect(lambda: self.start())
        self._stop_button = QPushButton("Stop")
        self._stop_button.setToolTip("Stop after this step; the last good state is saved")
        self._stop_button.setEnabled(False)
        self._stop_button.clicked.connect(self.stop)
        run_row = QHBoxLayout()
        run_row.addWidget(self._start_button, 1)
        run_row.addWidget(self._stop_button)
        self._status = QLabel("Pick layer pairs (or a folder) and press Start training.")
        self._status.setWordWrap(True)
        self._plot = LossPlot()

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(source_row)
        layout.addWidget(self._table)
        layout.addWidget(self._folder_row)
        layout.addWidget(self._options)
        layout.addLayout(top_form)
        layout.addWidget(self._advanced_button)
        layout.addWidget(self._advanced)
        layout.addWidget(self._preview_check)
        layout.addWidget(self._qc_panel)
        layout.addLayout(run_row)
        layout.addWidget(self._status)
        layout.addWidget(self._plot, 1)
        area = QScrollArea()  # the dock scrolls when the advanced options are unfolded
        area.setWidget(body)
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(area)
        self.setMinimumWidth(380)

        layers = self._viewer.layers
        layers.events.inserted.connect(self._on_inserted)
        layers.events.removed.connect(self._refresh_pairs)
        for layer in layers:
            layer.events.name.connect(self._refresh_pairs)
        session_models.follow(self._refresh_start_models, self)
        self._refresh_start_models()
        self._refresh_pairs()
        preload_core()

    # ------------------------------------------------------------------ options
    @property
    def options(self) -> OptionForm:
        """The main options (family, epochs, learning rate, batch size, crop size, device)."""
        return self._options

    @property
    def advanced(self) -> OptionForm:
        """The advanced options (folded away by default)."""
        return self._advanced

    def _toggle_advanced(self, shown: bool) -> None:
        self._advanced.setVisible(shown)
        self._advanced_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )

    def _on_source_changed(self) -> None:
        layers = self._layers_radio.isChecked()
        self._table.setVisible(layers)
        self._folder_row.setVisible(not layers)

    def set_folder(self, folder: str | Path | None) -> None:
        """Train on a dataset folder (``None``: on the layer pairs)."""
        self._folder_edit.setText("" if folder is None else str(folder))
        (self._layers_radio if folder is None else self._folder_radio).setChecked(True)

    def set_output(self, path: str | Path) -> None:
        """Set the model file to write."""
        self._output_edit.setText(str(path))

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training folder")
        if folder:
            self._folder_edit.setText(folder)

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model as", "", "Models (*.pt)")
        if path:
            self._output_edit.setText(path if path.endswith(".pt") else path + ".pt")

    def _browse_start_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to fine-tune", "", "Models (*.pt)")
        if path:
            self.set_start_model(path)

    def set_start_model(self, model: str | Path | None) -> None:
        """Start from scratch (``None``), a built-in model name or a model file."""
        if model is None:
            self._start_combo.setCurrentIndex(0)
            return
        key = str(model)
        if self._start_combo.findData(key) < 0:
            self._files.append(key)
            self._refresh_start_models()
        self._start_combo.setCurrentIndex(self._start_combo.findData(key))

    def _refresh_start_models(self) -> None:
        from napari_cellseg.models.builtin import available

        current = self._start_combo.currentData()
        self._start_combo.blockSignals(True)
        self._start_combo.clear()
        self._start_combo.addItem(SCRATCH, None)
        for name in available():
            self._start_combo.addItem(f"{name} (built-in)", name)
        for model in reversed(session_models.models()):
            self._start_combo.addItem(model.label, str(model.path))
        for path in self._files:
            self._start_combo.addItem(Path(path).name, path)
        self._start_combo.setCurrentIndex(max(self._start_combo.findData(current), 0))
        self._start_combo.blockSignals(False)

    def config(self) -> TrainConfig:
        """The training options chosen in the widget, validated.

        Raises
        ------
        CellsegError
            For options that do not parse or do not fit together.
        """
        values = {**self._options.values(), **self._advanced.values()}
        folder = self._folder_edit.text().strip() if self._folder_radio.isChecked() else ""
        output = self._output_edit.text().strip()
        config = TrainConfig(
            **values,
            dir=folder or None,
            pretrained_model=self._start_combo.currentData(),
            model=output or None,
        )
        config.validate()
        if not output:
            stamp = datetime.now().strftime("%Y_%m_%d_%H_%M_%S")
            config.model = str(DEFAULT_MODEL_DIR / f"cellseg_{config.architecture}_{stamp}.pt")
        elif Path(output).exists():
            raise CellsegError(
                f"the model file {output} already exists and would be replaced: choose another "
                "name under 'Save to' (to go on from it, pick it under 'Start from')"
            )
        return config

    # ------------------------------------------------------------------ pairs
    def _on_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_pairs)
        self._refresh_pairs()

    def _labels_names(self) -> list[str]:
        return [
            layer.name
            for layer in self._viewer.layers
            if isinstance(layer, Labels) and PREVIEW_KEY not in layer.metadata
        ]

    def _image_names(self) -> list[str]:
        return [layer.name for layer in self._viewer.layers if isinstance(layer, Image)]

    def _refresh_pairs(self, *_: Any) -> None:
        """One row per Labels layer; rows keep the user's choices, new rows are auto-paired."""
        current = self.pairs()
        old = {pair.labels: pair for pair in current}
        images = self._image_names()
        rows = []
        for name in self._labels_names():
            pair = old.get(name)
            if pair is None or (pair.image is not None and pair.image not in images):
                image = pair_image(name, images)
                pair = Pair(name, image, "train", image is not None)
            rows.append(pair)
        if rows != current or images != self._table_images:
            self.set_pairs(rows)

    def pairs(self) -> list[Pair]:
        """The rows of the pairs table."""
        out = []
        for row in range(self._table.rowCount()):
            use = self._table.cellWidget(row, 0)
            image = self._table.cellWidget(row, 2).currentText()
            out.append(
                Pair(
                    labels=self._table.item(row, 1).text(),
                    image=image or None,
                    role=self._table.cellWidget(row, 3).currentText(),
                    use=use.isChecked(),
                )
            )
        return out

    def set_pairs(self, pairs: list[Pair]) -> None:
        """Fill the pairs table (labels layers missing from the viewer are left out)."""
        from qtpy.QtWidgets import QTableWidgetItem

        images = self._table_images = self._image_names()
        labels = set(self._labels_names())
        pairs = [pair for pair in pairs if pair.labels in labels]
        self._table.setRowCount(len(pairs))
        for row, pair in enumerate(pairs):
            use = QCheckBox()
            use.setChecked(pair.use and pair.image is not None)
            item = QTableWidgetItem(pair.labels)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            image = QComboBox()
            image.addItems(["", *images])
            image.setCurrentText(pair.image or "")
            image.currentTextChanged.connect(lambda text, box=use: box.setChecked(bool(text)))
            role = QComboBox()
            role.addItems(ROLES)
            role.setCurrentText(pair.role)
            self._table.setCellWidget(row, 0, use)
            self._table.setItem(row, 1, item)
            self._table.setCellWidget(row, 2, image)
            self._table.setCellWidget(row, 3, role)
        self._fit_table()

    def _fit_table(self) -> None:
        """Make the table as tall as its rows (2 to 5 of them), no taller."""
        rows = min(max(self._table.rowCount(), 2), 5)
        row_height = self._table.verticalHeader().defaultSectionSize()
        header = self._table.horizontalHeader().sizeHint().height()
        self._table.setFixedHeight(header + rows * row_height + 2 * self._table.frameWidth())

    # ------------------------------------------------------------------ QC
    def _check(
        self, pairs: list[Pair], nchan: int
    ) -> tuple[list[str], list[str], tuple[str, str | None]]:
        """Run the QC checks on every frame of the chosen labels.

        The frames of each pair are checked as :meth:`_copy_pairs` will split them, so that
        QC never passes a pair that training then refuses.

        Returns the blocking messages, the warning messages and the pair to open the QC widget
        on (the first with a blocking problem, else the first with a warning).
        """
        blocking: list[str] = []
        warnings: list[str] = []
        focus: dict[str, tuple[str, str | None]] = {}
        for pair in pairs:
            labels = self._viewer.layers[pair.labels]
            image = self._viewer.layers[pair.image]
            mismatch = _frames_problem(pair, image, labels.data.shape, nchan)
            if mismatch:
                blocking.append(mismatch)
                focus.setdefault("blocking", (pair.labels, pair.image))
                continue
            shape = image.data.shape[:-1] if image.rgb else image.data.shape
            links = current_links(labels.data, labels.metadata)
            for frame in np.ndindex(*labels.data.shape[:-2]):
                where = f"'{pair.labels}'" + (f" frame {frame}" if frame else "")
                report = run_qc(
                    np.asarray(labels.data[frame]),
                    tuple(shape[-2:]),
                    frame_links(links, frame),
                    source=pair.labels,
                )
                for problem in report.problems:
                    found = {"blocking": blocking, "warning": warnings}.get(problem.severity)
                    if found is not None:
                        found.append(f"{where}: {problem.message}")
                        focus.setdefault(problem.severity, (pair.labels, pair.image))
        first = focus.get("blocking") or focus.get("warning") or (pairs[0].labels, pairs[0].image)
        return blocking, warnings, first

    def open_qc(self) -> Any:
        """Dock the Annotation QC widget on the labels that stopped the start, and run it.

        Returns
        -------
        QCWidget or None
            The docked widget.
        """
        if self._qc_labels is None:
            return None
        _, widget = self._viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotation QC")
        labels, image = self._qc_labels
        widget.set_layers(labels, image)
        widget.run()
        return widget

    def _show_qc(self, title: str, messages: list[str], blocking: bool) -> None:
        """Show QC findings above the Start button (the first two; all in the tooltip)."""
        lines = [html.escape(title), *map(html.escape, messages[:2])]
        if len(messages) > 2:
            lines.append(f"... and {len(messages) - 2} more")
        color = "#ff6b61" if blocking else "#ffcc00"
        self._qc_label.setText(f"<span style='color:{color}'>{'<br>'.join(lines)}</span>")
        self._qc_label.setToolTip("\n".join(messages[:30]))
        self._qc_button.setText(f"Open Annotation QC on '{self._qc_labels[0]}'")
        self._anyway_button.setVisible(not blocking)
        self._qc_panel.setVisible(True)

    # ------------------------------------------------------------------ running
    @property
    def busy(self) -> bool:
        """Whether a training run is in progress."""
        return self._worker is not None

    def start(self, *, accept_warnings: bool = False) -> bool:
        """Check the annotations and start training in a thread worker.

        Blocking QC problems stop the start (with a message and a button to the QC widget);
        warnings are shown and need a second click ("Train anyway", ``accept_warnings``).

        Parameters
        ----------
        accept_warnings
            Start despite QC warnings.

        Returns
        -------
        bool
            Whether training started.
        """
        if self.busy:
            show_warning("Train: a run is in progress; stop it first.")
            return False
        self._qc_panel.setVisible(False)
        try:
            config = self.config()
            if config.dir is None:
                data = self._layer_data(config, accept_warnings)
                if data is None:
                    return False
            else:
                data = TrainData()
        except CellsegError as err:
            show_error(f"Train: {err}")
            self._status.setText(f"Not started: {err}")
            return False
        preview = self._preview_frame(config) if self._preview_check.isChecked() else None
        if preview is not None:
            self._show_preview(np.zeros(preview[1].spatial_shape, np.uint16), 0)
        self._start_worker(config, data, preview)
        return True

    def _layer_data(self, config: TrainConfig, accept_warnings: bool) -> TrainData | None:
        """QC the chosen pairs and copy their data (None when QC stopped the start)."""
        pairs = [pair for pair in self.pairs() if pair.use and pair.image]
        if not any(pair.role == "train" for pair in pairs):
            raise CellsegError(
                "no training pairs: tick a Labels layer and choose its Image layer "
                "(or train on a folder)"
            )
        blocking, warnings, focus = self._check(pairs, config.nchan)
        self._qc_labels = focus
        if blocking:
            self._show_qc("Not started, the annotations need fixing first:", blocking, True)
            show_error(f"Train: not started; blocking annotation problem: {blocking[0]}")
            self._status.setText("Not started: fix the blocking annotation problems first.")
            return None
        if warnings and not accept_warnings:
            self._show_qc(f"The annotations have {len(warnings)} warning(s):", warnings, False)
            show_warning(f"Train: {len(warnings)} annotation warning(s); check or train anyway.")
            return None
        return self._copy_pairs(pairs, config)

    def _copy_pairs(self, pairs: list[Pair], config: TrainConfig) -> TrainData:
        """Copy the layers of the chosen pairs into frames (every stack frame a sample)."""
        data = TrainData()
        for pair in pairs:
            image = self._viewer.layers[pair.image]
            labels = self._viewer.layers[pair.labels]
            label_data = np.array(labels.data)
            mismatch = _frames_problem(pair, image, label_data.shape, config.nchan)
            if mismatch:
                raise CellsegError(mismatch)
            frames, _ = layer_frames(
                np.array(image.data), bool(image.rgb), config.nchan, source=pair.image
            )
            links = current_links(labels.data, labels.metadata)
            val = pair.role == "validation"
            for frame in frames:
                name = pair.labels + (f"[{','.join(map(str, frame.index))}]" if frame.index else "")
                (data.val_images if val else data.images).append(frame.data)
                (data.val_labels if val else data.labels).append(label_data[frame.index])
                (data.val_names if val else data.names).append(name)
                (data.val_links if val else data.links).append(frame_links(links, frame.index))
        return data

    def _preview_frame(self, config: TrainConfig) -> tuple[str, Frame] | None:
        """A copy of the frame to preview: the active image's current frame, else the first
        training pair's image."""
        active = self._viewer.layers.selection.active
        if not isinstance(active, Image):
            pairs = [p for p in self.pairs() if p.use and p.image and p.role == "train"]
            active = self._viewer.layers[pairs[0].image] if pairs else None
        if active is None or active.multiscale:
            return None
        try:
            frames, lead = layer_frames(
                np.asarray(active.data), bool(active.rgb), config.nchan, source=active.name
            )
        except CellsegError:
            return None
        point = np.round(active.world_to_data(self._viewer.dims.point)).astype(int)
        index = tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(point[: len(lead)], lead))
        frame = next(f for f in frames if f.index == index)
        copy = Frame(frame.index, np.array(frame.data), frame.channel_axis)
        self._preview_target = (active.name, _spatial_placement(active))
        return active.name, copy

    def _start_worker(
        self, config: TrainConfig, data: TrainData, preview: tuple[str, Frame] | None
    ) -> None:
        self._stop = threading.Event()
        self.result = None
        self._preview_note = ""
        self._arch = config.architecture
        self._plot.clear()
        self._progress = cancelable_progress(
            total=0, desc=f"Training {config.architecture}", cancel_callback=self.stop
        )
        worker = create_worker(
            run_training,
            config,
            data,
            None if preview is None else preview[1],
            stop=self._stop,
            _ignore_errors=True,
        )
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._start_button.setEnabled(False)
        self._stop_button.setEnabled(True)
        self._status.setText(f"Starting: {config.model}")
        worker.start()

    def stop(self) -> None:
        """Stop after the current step; the last good checkpoint is kept."""
        self._stop.set()
        if self.busy:
            self._status.setText("Stopping after this step…")

    # ------------------------------------------------------------------ slots (main thread)
    def _on_yielded(self, event: Any) -> None:
        if isinstance(event, Preview):
            self._show_preview(event.labels, event.epoch)
            return
        self._plot.add(event)
        now = time.perf_counter()
        if event.kind == "step" and now - self._last_redraw < REDRAW_S:
            return
        self._last_redraw = now
        if self._progress is not None:
            if self._progress.total != event.total_steps:
                self._progress.total = event.total_steps
            self._progress.update(event.step - self._progress.n)
            self._progress.set_description(
                f"Training: epoch {event.epoch}/{event.n_epochs}, ETA {_duration(event.eta_s)}"
            )
        val = "" if event.val_loss is None else f", validation {event.val_loss:.4g}"
        self._status.setText(
            f"Epoch {event.epoch}/{event.n_epochs}, step {event.step}/{event.total_steps}: "
            f"loss {event.loss:.4g}{val}; {_duration(event.elapsed_s)} elapsed, "
            f"ETA {_duration(event.eta_s)}{self._preview_note}"
        )
        self._plot.update()

    def _show_preview(self, labels: np.ndarray, epoch: int) -> None:
        """Show a preview segmentation (epoch 0: an empty one, made when training starts).

        The layer is made once, at the start, because adding a layer costs napari a few
        hundred milliseconds on the main thread; later previews only replace its data.
        """
        if self._preview_target is None:
            return
        image, placement = self._preview_target
        if epoch:
            self._preview_note = f"; preview of epoch {epoch} in 'training preview ({image})'"
        for layer in self._viewer.layers:
            if isinstance(layer, Labels) and layer.metadata.get(PREVIEW_KEY) == image:
                fits = labels.dtype.itemsize <= layer.data.dtype.itemsize
                if layer.data.shape == labels.shape and fits:
                    layer.data[...] = labels  # our own layer: in place is half the redraw cost
                    layer.refresh()
                else:
                    layer.data = labels
                return
        self._viewer.add_labels(
            labels,
            name=f"training preview ({image})",
            metadata={PREVIEW_KEY: image},
            opacity=0.5,
            **placement,
        )

    def _on_returned(self, result: TrainResult) -> None:
        self.result = result
        path = Path(result.model_path).resolve()
        session_models.add(
            SessionModel(path.stem, path, self._arch, result.epochs_done, result.stopped)
        )
        how = "stopped" if result.stopped else "done"
        self._status.setText(
            f"Training {how} after {result.epochs_done} epoch(s), loss {result.final_loss:.4g}. "
            f"Model: {path} (listed in the Segment widget)."
        )
        show_info(f"Train: {how}; model saved to {path}")
        self._plot.update()

    def _on_errored(self, error: Exception) -> None:
        if isinstance(error, CellsegError):
            show_error(f"Train: {error}")
            self._status.setText(f"Training failed: {error}")
            return
        raise error

    def _on_finished(self) -> None:
        self._worker = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._start_button.setEnabled(True)
        self._stop_button.setEnabled(False)


def _spatial_placement(layer: Image) -> dict[str, Any]:
    """Scale and translate of the last two (Y, X) axes of an image layer."""
    spatial = layer.ndim - (1 if layer.rgb else 0)
    return {
        "scale": layer.scale[spatial - 2 : spatial],
        "translate": layer.translate[spatial - 2 : spatial],
    }


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# ---------------------------------------------------------------------- worker
def run_training(
    config: TrainConfig,
    data: TrainData,
    preview: Frame | None,
    *,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[Progress | Preview, None, TrainResult]:
    """Worker: build the samples, run the training generator, preview saved models.

    Parameters
    ----------
    config
        Training options (``config.dir`` set: train on that folder, after checking it).
    data
        Copies of the layer data (empty for a folder).
    preview
        A copy of the frame to segment each time the model is saved, or None.
    stop
        Set it to stop after the current step (the last good state is saved).
    clock
        Time source for throttling the previews.

    Yields
    ------
    Progress or Preview
        Training events, and now and then a preview segmentation.

    Returns
    -------
    TrainResult
        The training result.
    """
    core_ready()
    from napari_cellseg.train import train
    from napari_cellseg.train.samples import make_items

    items = val_items = None
    if config.dir:
        _check_folder(config)
    else:
        items = make_items(data.images, data.labels, config, names=data.names, links=data.links)
        if data.val_images:
            val_items = make_items(
                data.val_images,
                data.val_labels,
                config,
                names=data.val_names,
                links=data.val_links,
            )
    gen = train(config, items, val_items, stop=stop, num_workers=0)
    last_preview = -math.inf
    while True:
        try:
            event = next(gen)
        except StopIteration as done:
            return done.value
        yield event
        saved = event.kind == "epoch" and (
            event.epoch % max(config.save_every, 1) == 0 or event.epoch == event.n_epochs
        )
        if preview is not None and saved and not stop.is_set():
            if clock() - last_preview >= PREVIEW_MIN_S or event.epoch == event.n_epochs:
                last_preview = clock()
                yield Preview(event.epoch, _segment_frame(config.model, preview, config.device))


def _segment_frame(model: str, frame: Frame, device: str) -> np.ndarray:
    from napari_cellseg.predict import Segmenter

    segmenter = Segmenter.from_file(model, device=device)
    prepared = segmenter.prepare(frame.data, channel_axis=frame.channel_axis, source="preview")
    return segmenter.segment(prepared[0]).labels


def _frames_problem(
    pair: Pair, image: Any, labels_shape: tuple[int, ...], nchan: int
) -> str | None:
    """Why the labels' frames do not match the image layer's, as training splits them."""
    dummy = np.broadcast_to(np.uint8(0), image.data.shape)  # the shape only, no copy
    frames, lead = layer_frames(dummy, bool(image.rgb), nchan, source=pair.image)
    yx = frames[0].spatial_shape
    if tuple(labels_shape) == (*lead, *yx):
        return None
    return (
        f"'{pair.labels}' has shape {tuple(labels_shape)} but '{pair.image}' holds "
        f"{len(frames)} frame(s) of {yx[0]}x{yx[1]} for a {nchan}-channel model; each image "
        f"frame needs a labels frame of its size (labels of shape {(*lead, *yx)})"
    )


def _check_folder(config: TrainConfig) -> None:
    """QC a training folder; blocking problems raise, warnings are issued as warnings."""
    import warnings

    from napari_cellseg.io.datasets import discover
    from napari_cellseg.qc import qc_dataset

    for part in str(config.dir).split("+"):
        dataset = discover(
            part,
            config.convention,
            img_filter=config.img_filter,
            mask_filter=config.mask_filter,
            look_one_level_down=config.look_one_level_down,
        )
        results = qc_dataset(
            dataset,
            links=config.links,
            nchan=None if config.chan else config.nchan,
            channel_axis=config.channel_axis,
        )
        reports = [report for _, report in results]
        bad = [r for r in reports if r.blocking]
        if bad:
            raise CellsegError(
                f"{len(bad)} mask(s) in {part} have blocking problems, e.g. "
                f"{bad[0].summary(1)}; check them with `cellseg qc {part}` (or fix copies with "
                f"`cellseg qc {part} --fix OUT`)"
            )
        n_warn = sum(p.severity == "warning" for r in reports for p in r.problems)
        if n_warn:
            warnings.warn(
                f"{n_warn} annotation warning(s) in {part}; see `cellseg qc {part}`",
                stacklevel=2,
            )
