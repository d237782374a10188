"""Train dock widget: train a model on pairs of Image + Labels layers or on a dataset folder.

The widget is thin: the options are the fields of :class:`napari_cellseg.config.TrainConfig`
(:mod:`.form`), the pairs are a table (:mod:`.pairs`), the annotations are checked and the
layers copied on the main thread (:mod:`.data`), and the training loop runs in a napari thread
worker (:mod:`.worker`) whose events feed the loss plot (:mod:`.plot`) and the preview layer.
The worker never reads or writes a layer; layers change only in the main-thread slots.
"""

from __future__ import annotations

import html
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, RadioButtons
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._dock import DockWidget, set_choices
from napari_cellseg.napari._forms import Form, with_button
from napari_cellseg.napari._frames import Frame, layer_frames, placement, preload_core
from napari_cellseg.napari._session_models import SessionModel, session_models
from napari_cellseg.napari.train.data import TrainData, check_pairs, copy_pairs
from napari_cellseg.napari.train.form import advanced_form, options_form, train_fields
from napari_cellseg.napari.train.pairs import Pair, PairsTable, updated_pairs
from napari_cellseg.napari.train.plot import LossPlot
from napari_cellseg.napari.train.worker import Preview, run_training

if TYPE_CHECKING:
    from napari_cellseg.train import Progress, TrainResult

#: Metadata key of the preview layer (value: the name of the previewed image).
PREVIEW_KEY = "cellseg_training_preview"
#: Least time between two updates of the progress text (seconds).
REDRAW_S = 0.1
#: Least time between two redraws of the loss plot (seconds; it is drawn again at the end).
PLOT_REDRAW_S = 0.5
#: Where models go when no output file is given.
DEFAULT_MODEL_DIR = Path.home() / "cellseg-models"
SCRATCH = "scratch (random weights)"
LAYERS, FOLDER = "Layers", "Folder"


class TrainWidget(DockWidget):
    """Train a segmentation model on layer pairs or a dataset folder, with live feedback.

    Blocking annotation problems stop the start; while it trains, the loss is plotted and
    each saved model segments a preview frame. Made like every
    :class:`~napari_cellseg.napari._dock.DockWidget`, from the viewer.
    """

    title = "Train"
    failed = "Training failed"

    def build(self) -> None:
        """Make the controls and follow the viewer's layers."""
        self._stop = threading.Event()
        self._preview_target: tuple[str, dict[str, Any]] | None = None
        self._last_redraw = self._last_plot = 0.0
        self._qc_labels: tuple[str, str | None] | None = None
        self._files: list[str] = []
        self._preview_note = ""
        self._arch = ""
        self.result: TrainResult | None = None
        helps = {name: f.metadata["help"] for name, f in train_fields().items()}

        # data: layer pairs or a folder
        self._source = RadioButtons(
            choices=(LAYERS, FOLDER), value=LAYERS, orientation="horizontal", label="train on"
        )
        self._source.changed.connect(self._on_source_changed)
        self._table = PairsTable()
        self._folder = FileEdit(mode="d", nullable=True, label="folder", tooltip=helps["dir"])
        self._folder.line_edit.native.setPlaceholderText(
            "training folder (Omnipose, DeLTA, CLB or CTC)"
        )
        folder_form = Container(widgets=[self._folder])
        folder_form.visible = False
        self._folder_form = folder_form

        # options
        self._options = options_form()
        self._start_combo = ComboBox(
            name="start_from", label="start from", tooltip=helps["pretrained_model"]
        )
        start_row = with_button(
            self._start_combo, "File…", "Fine-tune a model file", self._browse_start_model
        )
        self._output = FileEdit(
            mode="w", filter="*.pt", nullable=True, label="save to", tooltip=helps["model"]
        )
        self._output.line_edit.native.setPlaceholderText(
            f"{DEFAULT_MODEL_DIR}/cellseg_<family>_<time>.pt"
        )
        files_form = Container(widgets=[start_row, self._output])
        self._advanced = advanced_form()
        self._advanced.visible = False
        self._advanced_button = QToolButton()
        self._advanced_button.setText("Advanced options")
        self._advanced_button.setCheckable(True)
        self._advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self._advanced_button.toggled.connect(self._toggle_advanced)
        self._preview_check = CheckBox(
            text="Preview on the active image",
            value=True,
            tooltip="Each time the model is saved (every 'save every' epochs), segment the "
            "active image (the current frame of a stack) with it into a 'training preview' layer",
        )

        layout = QVBoxLayout(body := QWidget())
        layout.addWidget(Container(widgets=[self._source]).native)
        layout.addWidget(self._table)
        layout.addWidget(folder_form.native)
        layout.addWidget(self._options.native)
        layout.addWidget(files_form.native)
        layout.addWidget(self._advanced_button)
        layout.addWidget(self._advanced.native)
        layout.addWidget(self._preview_check.native)
        layout.addWidget(self._qc_panel_widget())
        stop_tip = "Stop after this step; the last good state is saved"
        layout.addLayout(self.run_row("Start training", self.start, stop_tip))
        self._status.setText("Pick layer pairs (or a folder) and press Start training.")
        layout.addWidget(self._status)
        self._plot = LossPlot()
        layout.addWidget(self._plot, 1)
        area = QScrollArea()  # the dock scrolls when the advanced options are unfolded
        area.setWidget(body)
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(area)
        self.setMinimumWidth(380)

        session_models.follow(self._refresh_start_models, self)
        self._refresh_start_models()
        self.follow_layers()
        preload_core()

    def _qc_panel_widget(self) -> QWidget:
        """The QC findings above the Start button (hidden until a start finds problems)."""
        self._qc_label = QLabel()
        self._qc_label.setWordWrap(True)
        self._qc_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._qc_button = QPushButton("Open Annotation QC")
        self._qc_button.clicked.connect(self.open_qc)
        self._anyway_button = QPushButton("Train anyway")
        self._anyway_button.clicked.connect(lambda: self.start(accept_warnings=True))
        buttons = QHBoxLayout()
        buttons.addWidget(self._qc_button)
        buttons.addWidget(self._anyway_button)
        self._qc_panel = QWidget()
        layout = QVBoxLayout(self._qc_panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._qc_label)
        layout.addLayout(buttons)
        self._qc_panel.setVisible(False)
        return self._qc_panel

    # ------------------------------------------------------------------ options
    @property
    def options(self) -> Form:
        """The main options (family, epochs, learning rate, batch size, crop size, device)."""
        return self._options

    @property
    def advanced(self) -> Form:
        """The advanced options (folded away by default)."""
        return self._advanced

    def _toggle_advanced(self, shown: bool) -> None:
        self._advanced.visible = shown
        self._advanced_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )

    def _on_source_changed(self, source: str) -> None:
        self._table.setVisible(source == LAYERS)
        self._folder_form.visible = source == FOLDER

    def set_folder(self, folder: str | Path | None) -> None:
        """Train on a dataset folder (``None``: on the layer pairs)."""
        self._folder.value = folder
        self._source.value = LAYERS if folder is None else FOLDER

    def set_output(self, path: str | Path) -> None:
        """Set the model file to write."""
        self._output.value = path

    def _browse_start_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to fine-tune", "", "Models (*.pt)")
        if path:
            self.set_start_model(path)

    def set_start_model(self, model: str | Path | None) -> None:
        """Start from scratch (``None``), a built-in model name or a model file."""
        key = None if model is None else str(model)
        if key is not None and key not in self._start_combo.choices:
            self._files.append(key)
            self._refresh_start_models()
        self._start_combo.value = key

    def _refresh_start_models(self) -> None:
        from napari_cellseg.models.builtin import available

        items = [(SCRATCH, None)] + [(f"{name} (built-in)", name) for name in available()]
        items += [(model.label, str(model.path)) for model in reversed(session_models.models())]
        items += [(Path(path).name, path) for path in self._files]
        set_choices(self._start_combo, items, None)

    def config(self) -> TrainConfig:
        """The training options chosen in the widget, validated.

        Raises
        ------
        CellsegError
            For options that do not parse or do not fit together.
        """
        values = {**self._options.values(), **self._advanced.values()}
        folder = self._folder.value if self._source.value == FOLDER else None
        output = self._output.value
        if output is not None and Path(output).suffix != ".pt":
            output = Path(output).with_name(Path(output).name + ".pt")  # a model file is .pt
        config = TrainConfig(
            **values,
            dir=None if folder is None else str(folder),
            pretrained_model=self._start_combo.value,
            model=None if output is None else str(output),
        )
        config.validate()
        if output is None:
            stamp = datetime.now().strftime("%Y_%m_%d_%H_%M_%S")
            config.model = str(DEFAULT_MODEL_DIR / f"cellseg_{config.architecture}_{stamp}.pt")
        elif Path(output).exists():
            raise CellsegError(
                f"the model file {output} already exists and would be replaced: choose another "
                "name under 'Save to' (to go on from it, pick it under 'Start from')"
            )
        return config

    # ------------------------------------------------------------------ pairs
    def _labels_names(self) -> list[str]:
        return self.layer_names(Labels, keep=lambda layer: PREVIEW_KEY not in layer.metadata)

    def refresh_layers(self) -> None:
        """One row per Labels layer; rows keep the user's choices, new rows are auto-paired."""
        current = self.pairs()
        images = self.layer_names(Image)
        rows = updated_pairs(current, self._labels_names(), images)
        if rows != current or images != self._table.images:
            self._table.set_pairs(rows, images)

    def pairs(self) -> list[Pair]:
        """The rows of the pairs table."""
        return self._table.pairs()

    def set_pairs(self, pairs: list[Pair]) -> None:
        """Fill the pairs table (labels layers missing from the viewer are left out)."""
        labels = set(self._labels_names())
        self._table.set_pairs(
            [pair for pair in pairs if pair.labels in labels], self.layer_names(Image)
        )

    # ------------------------------------------------------------------ QC
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
            self.notify("a run is in progress; stop it first.", "warning")
            return False
        self._qc_panel.setVisible(False)
        try:
            config = self.config()
            data = TrainData() if config.dir else self._layer_data(config, accept_warnings)
        except CellsegError as err:
            self.notify(str(err), "error")
            self._status.setText(f"Not started: {err}")
            return False
        if data is None:
            return False
        preview = self._preview_frame(config) if self._preview_check.value else None
        if preview is not None:
            self._show_preview(np.zeros(preview.spatial_shape, np.uint16), 0)
        self._stop = threading.Event()
        self.result = None
        self._preview_note = ""
        self._arch = config.architecture
        self._plot.clear()
        self.start_worker(
            run_training,
            config,
            data,
            preview,
            stop=self._stop,
            desc=f"Training {config.architecture}",
            yielded=self._on_yielded,
            returned=self._on_returned,
        )
        self._status.setText(f"Starting: {config.model}")
        return True

    def _layer_data(self, config: TrainConfig, accept_warnings: bool) -> TrainData | None:
        """QC the chosen pairs and copy their data (None when QC stopped the start)."""
        pairs = [pair for pair in self.pairs() if pair.use and pair.image]
        if not any(pair.role == "train" for pair in pairs):
            raise CellsegError(
                "no training pairs: tick a Labels layer and choose its Image layer "
                "(or train on a folder)"
            )
        found = check_pairs(self._viewer.layers, pairs, config.nchan)
        self._qc_labels = found.focus
        if found.blocking:
            self._show_qc("Not started, the annotations need fixing first:", found.blocking, True)
            self.notify(f"not started; blocking annotation problem: {found.blocking[0]}", "error")
            self._status.setText("Not started: fix the blocking annotation problems first.")
            return None
        if found.warnings and not accept_warnings:
            n = len(found.warnings)
            self._show_qc(f"The annotations have {n} warning(s):", found.warnings, False)
            self.notify(f"{n} annotation warning(s); check or train anyway.", "warning")
            return None
        return copy_pairs(self._viewer.layers, pairs, config)

    def _preview_frame(self, config: TrainConfig) -> Frame | None:
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
        self._preview_target = (active.name, placement(active, last=2))
        return Frame(frame.index, np.array(frame.data), frame.channel_axis)

    def stop(self) -> None:
        """Stop after the current step; the last good checkpoint is kept."""
        self._stop.set()
        if self.busy:
            self._status.setText("Stopping after this step…")

    # ------------------------------------------------------------------ slots (main thread)
    def _on_yielded(self, event: Progress | Preview) -> None:
        if isinstance(event, Preview):
            self._show_preview(event.labels, event.epoch)
            return
        self._plot.add(event)
        now = time.perf_counter()
        if now - self._last_plot >= PLOT_REDRAW_S:
            self._last_plot = now
            self._plot.redraw()
        if event.kind == "step" and now - self._last_redraw < REDRAW_S:
            return
        self._last_redraw = now
        self.set_progress(
            event.step,
            event.total_steps,
            f"Training: epoch {event.epoch}/{event.n_epochs}, ETA {_duration(event.eta_s)}",
        )
        val = "" if event.val_loss is None else f", validation {event.val_loss:.4g}"
        self._status.setText(
            f"Epoch {event.epoch}/{event.n_epochs}, step {event.step}/{event.total_steps}: "
            f"loss {event.loss:.4g}{val}; {_duration(event.elapsed_s)} elapsed, "
            f"ETA {_duration(event.eta_s)}{self._preview_note}"
        )

    def _show_preview(self, labels: np.ndarray, epoch: int) -> None:
        """Show a preview segmentation (epoch 0: an empty one, made when training starts).

        The layer is made once, at the start, because adding a layer costs napari a few
        hundred milliseconds on the main thread; later previews only replace its data.
        """
        if self._preview_target is None:
            return
        image, where = self._preview_target
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
            **where,
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
        self.notify(f"{how}; model saved to {path}")
        self._plot.redraw()


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
