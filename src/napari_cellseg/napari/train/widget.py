"""Train dock widget: train a model on pairs of Image + Labels layers or on a dataset folder.

The widget is thin: the options are the fields of :class:`napari_cellseg.config.TrainConfig`
(:mod:`.form`), the pairs are a table (:mod:`.pairs`), the annotations are checked and the
layers copied on the main thread (:mod:`.data`; findings shown by :mod:`.qc_panel`), and the
training loop runs in a napari thread worker (:mod:`.worker`) whose events feed the loss plot
(:mod:`.plot`) and the preview layer; :mod:`.lr_finder` runs the learning-rate range test.
The worker never reads or writes a layer; layers change only in the main-thread slots.

What a first run needs is filled in from the data: only the pairs of the same kind as the
selected layer's are ticked (:mod:`.pairs`), the crop size and the epochs fit the ticked
frames and the device (:mod:`.defaults`; an editor the user changed keeps its value), and the
model path is shown before Start. The preview is drawn as outlines over the image and the
ground truth, and the status line says when it finds no cells yet.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, RadioButtons
from napari.layers import Image, Labels
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QToolButton,
    QVBoxLayout,
)

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.families import get_family
from napari_cellseg.napari._appearance import ImageKind, image_kind
from napari_cellseg.napari._dock import DockWidget, set_choices, wrapped_label
from napari_cellseg.napari._forms import Form, with_button
from napari_cellseg.napari._frames import (
    Frame,
    has_accelerator,
    layer_frames,
    placement,
    preload_core,
)
from napari_cellseg.napari._session_models import SessionModel, session_models
from napari_cellseg.napari.train.data import TrainData, check_pairs, copy_pairs
from napari_cellseg.napari.train.defaults import DEFAULT_MODEL_DIR, default_model_path, suggest
from napari_cellseg.napari.train.form import advanced_form, options_form, train_fields
from napari_cellseg.napari.train.lr_finder import LrFinder
from napari_cellseg.napari.train.pairs import Pair, PairsTable, pair_image, updated_pairs
from napari_cellseg.napari.train.plot import LossPlot
from napari_cellseg.napari.train.preview import PREVIEW_KEY, show_preview
from napari_cellseg.napari.train.qc_panel import QCPanel
from napari_cellseg.napari.train.worker import Preview, run_training

if TYPE_CHECKING:
    from napari_cellseg.train import Progress, TrainResult

#: Least time between two updates of the progress text (seconds).
REDRAW_S = 0.1
#: Least time between two redraws of the loss plot (seconds; it is drawn again at the end).
PLOT_REDRAW_S = 0.5
#: Options the widget suggests from the data and the device (:mod:`.defaults`).
SUGGESTED = ("n_epochs", "tyx")
#: How often to look again whether torch found a GPU, while it loads (ms).
ACCELERATOR_POLL_MS = 500
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
        self._progress_text = ""
        self._arch = ""
        self._kinds: dict[str, tuple[int, ImageKind]] = {}  # image -> (id of its data, kind)
        self._default_output: Path | None = None
        self._suggesting = False
        self.result: TrainResult | None = None
        helps = {name: f.metadata["help"] for name, f in train_fields().items()}
        self._helps = helps

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
        self._output_note = Label(label="folder")
        wrapped_label(label=self._output_note.native)
        self._output.changed.connect(self._on_output_changed)
        files_form = Container(widgets=[start_row, self._output, self._output_note])
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

        layout = QVBoxLayout(self.body)
        layout.addWidget(Container(widgets=[self._source]).native)
        layout.addWidget(self._table)
        layout.addWidget(folder_form.native)
        layout.addWidget(self._options.native)
        self.lr_finder = LrFinder(self)
        layout.addWidget(self.lr_finder)
        layout.addWidget(files_form.native)
        layout.addWidget(self._advanced_button)
        layout.addWidget(self._advanced.native)
        layout.addWidget(self._preview_check.native)
        self._plot = LossPlot()
        layout.addWidget(self._plot, 1)
        self._qc_panel = QCPanel(self.open_qc, lambda: self.start(accept_warnings=True))
        self.footer.addWidget(self._qc_panel)
        stop_tip = "Stop after this step; the last good state is saved"
        self.footer.addLayout(self.run_row("Start training", self.start, stop_tip))
        self.set_status("Pick layer pairs (or a folder) and press Start training.")
        self.footer.addWidget(self._status)

        # values suggested so far: an editor still showing one has not been changed by the user
        self._suggested = {name: self._options.editor(name).value for name in SUGGESTED}
        self._accelerator_timer = QTimer(self)
        self._accelerator_timer.setSingleShot(True)
        self._accelerator_timer.setInterval(ACCELERATOR_POLL_MS)
        self._accelerator_timer.timeout.connect(self._suggest)
        self._table.changed.connect(self._suggest)
        self._options.changed.connect(self._on_options_changed)
        self._advanced.changed.connect(self._suggest)

        session_models.follow(self._refresh_start_models, self)
        self._refresh_start_models()
        preload_core()
        self.follow_layers()
        self._new_default_output()

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
        self._suggest()

    def _on_options_changed(self, *_: Any) -> None:
        self._new_default_output()  # the default name holds the family
        self._suggest()

    # ------------------------------------------------------------------ suggested values
    def _training_frames(self) -> list[tuple[int, int]]:
        """``(Y, X)`` of every frame of the ticked training pairs (none for a folder)."""
        if self._source.value != LAYERS:
            return []
        shapes = []
        for pair in self.pairs():
            layer = self.layer(pair.image) if pair.use and pair.role == "train" else None
            if layer is None or layer.multiscale:
                continue
            kind = self._kind(layer.name)
            lead = layer.data.shape[: -3 if layer.rgb else -2]
            shapes += [kind.frame_shape] * int(np.prod(lead, dtype=int))
        return shapes

    def _suggest(self, *_: Any) -> None:
        """Suggest the crop size and the epochs for the ticked pairs and the device, in the
        editors the user has not changed (the reasons go to their tooltips)."""
        shapes = self._training_frames()
        if self._suggesting or not shapes:
            return
        try:
            config = TrainConfig(**self._options.values(), **self._advanced.values())
        except CellsegError:  # text being typed; suggested again once it parses
            return
        accelerator = has_accelerator(config.device)
        if accelerator is None:  # torch still loading: suggest for a CPU, look again later
            self._accelerator_timer.start()
        found = suggest(shapes, config, bool(accelerator))
        values = {"n_epochs": found.epochs, "tyx": f"{found.crop},{found.crop}"}
        reasons = {"n_epochs": found.why_epochs, "tyx": found.why_crop}
        self._suggesting = True
        try:
            for name in SUGGESTED:
                editor = self._options.editor(name)
                editor.tooltip = f"{self._helps[name]}\n\n{reasons[name]}"
                if editor.value == self._suggested[name] and editor.value != values[name]:
                    self._options.set_value(name, values[name])
                    self._suggested[name] = editor.value
        finally:
            self._suggesting = False

    def _kind(self, name: str) -> ImageKind:
        """What the Image layer ``name`` is (kept while its data stay the same array)."""
        layer = self._viewer.layers[name]
        kept = self._kinds.get(name)
        if kept is None or kept[0] != id(layer.data):
            kept = self._kinds[name] = (id(layer.data), image_kind(layer))
        return kept[1]

    # ------------------------------------------------------------------ the model file
    def _new_default_output(self, *, used: bool = False) -> None:
        """Show a default model file under 'save to' for the chosen family (a new one when
        the shown one was ``used``), unless the user chose a file."""
        shown = self._output.value
        if shown is not None and Path(shown) != self._default_output:
            return
        arch = self._options.editor("architecture").value
        if used or shown is None or not Path(shown).name.startswith(f"cellseg_{arch}_"):
            self._default_output = default_model_path(arch)
            self._output.value = self._default_output

    def _on_output_changed(self, *_: Any) -> None:
        output = self._output.value
        path = Path(output) if output is not None else DEFAULT_MODEL_DIR / "cellseg_<family>.pt"
        self._output_note.value = str(path.parent)
        self._output_note.tooltip = f"The model is saved as {path} (and a .yaml beside it)"

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
            config.model = str(default_model_path(config.architecture))
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
        """One row per Labels layer; rows keep the user's choices, new rows are auto-paired
        and ticked when their image is like the first ticked pair's, or else the selected
        layer's."""
        current = self.pairs()
        images = self.layer_names(Image)
        ticked = [pair.image for pair in current if pair.use and pair.image in images]
        reference = ticked[0] if ticked else self._active_image(images)
        rows = updated_pairs(current, self._labels_names(), images, self._kind, reference)
        if rows != current or images != self._table.images:
            self._table.set_pairs(rows, images)

    def _active_image(self, images: list[str]) -> str | None:
        """The selected Image layer, or the image a selected Labels layer annotates."""
        active = self._viewer.layers.selection.active
        if isinstance(active, Image):
            return active.name
        if isinstance(active, Labels):
            return pair_image(active.name, images)
        return None

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
        """Show QC findings above the Start button."""
        self._qc_panel.show_findings(title, messages, blocking, self._qc_labels[0])

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
        ready = self.ready_to_run(accept_warnings=accept_warnings)
        if ready is None:
            return False
        config, data = ready
        # a tracking model links frames and has nothing to segment a preview with
        wants_preview = self._preview_check.value and not get_family(config.architecture).tracks
        preview = self._preview_frame(config) if wants_preview else None
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
        self._progress_text = f"Starting: {config.model}"
        self.set_status(self._progress_text)
        return True

    def ready_to_run(self, *, accept_warnings: bool) -> tuple[TrainConfig, TrainData] | None:
        """The options and a copy of the data for a run in the worker, or None (said why).

        Refuses while a run is in progress, on bad options and on blocking annotation
        problems (and on warnings unless ``accept_warnings``).
        """
        if self.busy:
            self.notify("a run is in progress; stop it first.", "warning")
            return None
        self._qc_panel.setVisible(False)
        try:
            config = self.config()
            data = TrainData() if config.dir else self._layer_data(config, accept_warnings)
        except CellsegError as err:
            self.notify(str(err), "error")
            self.set_status(f"Not started: {err}")
            return None
        return None if data is None else (config, data)

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
            self.set_status("Not started: fix the blocking annotation problems first.")
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
            self.set_status("Stopping after this step…")

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
        self._progress_text = (
            f"Epoch {event.epoch}/{event.n_epochs}, step {event.step}/{event.total_steps}: "
            f"loss {event.loss:.4g}{val}; {_duration(event.elapsed_s)} elapsed, "
            f"ETA {_duration(event.eta_s)}"
        )
        self.set_status(self._progress_text + self._preview_note)

    def _show_preview(self, labels: np.ndarray, epoch: int) -> None:
        """Show a preview segmentation (epoch 0: an empty one, made when training starts).

        The layer is made once, at the start, because adding a layer costs napari a few
        hundred milliseconds on the main thread; later previews only replace its data. Its
        labels are drawn as outlines, and the status line says how many cells it found.
        """
        if self._preview_target is None:
            return
        image, where = self._preview_target
        if epoch:
            cells = len(np.unique(labels[labels > 0]))
            found = f"{cells} cells" if cells else "no cells yet"
            self._preview_note = f"; preview: {found} at epoch {epoch} ('training preview')"
            self.set_status(self._progress_text + self._preview_note)
        show_preview(self._viewer, labels, image, where)

    def finished(self) -> None:
        """A new default model file for the next run (this one's is taken)."""
        self._new_default_output(used=True)

    def _on_returned(self, result: TrainResult) -> None:
        self.result = result
        path = Path(result.model_path).resolve()
        session_models.add(
            SessionModel(path.stem, path, self._arch, result.epochs_done, result.stopped)
        )
        how = "stopped" if result.stopped else "done"
        self._progress_text = (
            f"Training {how} after {result.epochs_done} epoch(s), loss {result.final_loss:.4g}"
        )
        self.set_status(
            f"{self._progress_text}{self._preview_note}. Model: {path} (listed in the Segment "
            "widget)."
        )
        self.notify(f"{how}; model saved to {path}")
        self._plot.redraw()


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
