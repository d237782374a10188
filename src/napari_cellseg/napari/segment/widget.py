"""Segment dock widget: apply a model to an Image layer and tune the mask reconstruction.

The widget is thin: the options come from :class:`~napari_cellseg.predict.config.PredictConfig`
and the family's ``Params`` (:mod:`.form`), the network and the reconstruction are the
prediction engine run in a napari thread worker (:mod:`.worker`), and layers change only in
the slots that run on the main thread (:mod:`.results`). The network outputs of the last runs
are kept per (model, device, image data, diameter), so that changing a reconstruction
parameter re-runs only the reconstruction. Torch is imported by the worker, never at import.

The model offered first is the one last chosen in this session (in any Segment widget), else
the built-in model for what the image looks like (:mod:`napari_cellseg.napari._appearance`:
``nuclei`` for fluorescence, ``bacteria_phase`` for transmitted light); the reconstruction
parameters of its family show before it is loaded (the family is read from the yaml beside a
model file).

A multiscale or lazy layer opened from an OME-Zarr / Zarr folder or a TIFF is segmented from
that file block by block into a new label Zarr beside it (:mod:`.huge`), never loaded whole.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from magicgui.widgets import CheckBox, ComboBox
from napari.layers import Image
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QGroupBox, QPlainTextEdit, QVBoxLayout

from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._appearance import BUILTIN_FOR, appearance
from napari_cellseg.napari._dock import DockWidget, set_choices
from napari_cellseg.napari._forms import with_button
from napari_cellseg.napari._frames import preload_core
from napari_cellseg.napari._session_models import session_models
from napari_cellseg.napari.segment import huge, results, worker
from napari_cellseg.napari.segment.form import ParameterForm, inference_form
from napari_cellseg.napari.segment.worker import Frames, Job, Loaded, Outputs

if TYPE_CHECKING:
    from napari_cellseg.predict import Segmenter

#: Network outputs kept in memory (per model and image), most recent first.
CACHE_SIZE = 2
#: Reconstruction parameters are applied this long after the last change (ms).
DEBOUNCE_MS = 250


class SegmentWidget(DockWidget):
    """Segment an Image layer with a built-in, file or session model.

    The network runs once per image (and model, device, diameter); a changed reconstruction
    parameter re-runs only the reconstruction. Made like every
    :class:`~napari_cellseg.napari._dock.DockWidget`, from the viewer.
    """

    title = "Segment"
    failed = "Not segmented"
    fill = False

    def build(self) -> None:
        """Make the controls and follow the viewer's layers."""
        self._segmenters: dict[tuple[str, str], Segmenter] = {}
        self._cache: OrderedDict[tuple[str, str, int, float], Outputs] = OrderedDict()
        self._files: list[str] = []
        self._session_seen: set[str] = set()  # session models already offered
        self._frames = 1
        self._last: tuple[Job, str] | None = None  # last run and its result layer
        self._pending = False
        self._blocks_stop = threading.Event()  # the Stop of a run from a file (.huge)

        self._model_combo = ComboBox(
            name="model", tooltip="Built-in models, models trained in this session, files"
        )
        self._model_combo.changed.connect(self._on_model_chosen)
        model_row = with_button(
            self._model_combo,
            "File…",
            "Add a model file (.pt) written by `cellseg train` or the Train widget",
            self._browse,
        )
        self._image_combo = ComboBox(
            name="image", tooltip="Image layer to segment (2D, RGB or a stack)"
        )
        self._image_combo.changed.connect(self._on_image_changed)
        self._form = inference_form([model_row, self._image_combo])
        self._form["device"].changed.connect(self._on_model_changed)
        self._card_box, self._card_text = card_box()
        self._params = ParameterForm(self._on_param_changed)
        params_box = QGroupBox("Reconstruction")
        QVBoxLayout(params_box).addWidget(self._params.native)
        self._outputs_check = CheckBox(
            text="Also add the network outputs as layers",
            tooltip="Flow (as colours), distance or probability maps",
        )
        self.set_status("Choose a model and an image, then press Segment.")

        layout = QVBoxLayout(self.body)
        layout.addWidget(self._form.native)
        layout.addWidget(self._card_box)
        layout.addWidget(params_box)
        layout.addWidget(self._outputs_check.native)
        self.footer.addLayout(self.run_row("Segment", self.run))
        self.footer.addWidget(self._status)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._reconstruct_last)

        session_models.follow(self._refresh_models, self)
        self.follow_layers()
        self._refresh_models()
        preload_core()

    # ------------------------------------------------------------------ choices
    def refresh_layers(self) -> None:
        """List the Image layers (a vanished choice falls back to the active or newest one)."""
        names = self.layer_names(Image)
        before = self._image_combo.value
        set_choices(self._image_combo, names, self.active_name(Image) or (names or [None])[-1])
        if self._image_combo.value != before:
            self._on_image_changed()

    def _refresh_models(self) -> None:
        """List built-in, session and file models; a model trained since the last refresh
        becomes the chosen one (it is the one the user wants to try next)."""
        from napari_cellseg.models.builtin import available

        session = [(m.label, str(m.path)) for m in reversed(session_models.models())]
        items = [(f"{name} (built-in)", name) for name in available()]
        items += session + [(Path(f).name, f) for f in self._files]
        new = [key for _, key in session if key not in self._session_seen]
        self._session_seen.update(new)
        set_choices(self._model_combo, items, self._preferred_model(items))
        if new:
            with self._model_combo.changed.blocked():
                self._model_combo.value = new[0]
        self._on_model_changed()

    def _preferred_model(self, items: list[tuple[str, str]]) -> str | None:
        """The model to offer: the one chosen last in this session, else the built-in model
        for what the chosen image looks like, else the first."""
        keys = [key for _, key in items]
        if session_models.chosen in keys:
            return session_models.chosen
        layer = self.layer(self._image_combo.value)
        if layer is not None and not layer.multiscale and layer.data.size:
            builtin = BUILTIN_FOR[appearance(layer.data, bool(layer.rgb))]
            if builtin in keys:
                return builtin
        return keys[0] if keys else None

    def _on_image_changed(self, *_: Any) -> None:
        """Offer the built-in model that suits the new image, unless one was chosen."""
        if session_models.chosen in self.models:
            return
        preferred = self._preferred_model([("", key) for key in self.models])
        if preferred is not None and preferred != self._model_combo.value:
            with self._model_combo.changed.blocked():
                self._model_combo.value = preferred
            self._on_model_changed()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Models (*.pt)")
        if path:
            self.add_model_file(path)

    def add_model_file(self, path: str | Path) -> None:
        """Add a model file to the model list and choose it.

        Parameters
        ----------
        path
            A ``.pt`` file written by ``cellseg train`` or the Train widget.
        """
        path = str(Path(path).resolve())
        if path not in self._files:
            self._files.append(path)
        self._refresh_models()
        self.set_model(path)

    def set_model(self, key: str | Path) -> None:
        """Choose a model by built-in name or file path (it must be in the list)."""
        keys = self.models
        for candidate in (str(key), str(Path(key).resolve())):
            if candidate in keys:
                self._model_combo.value = candidate
                return
        raise CellsegError(f"model {key} is not in the Segment widget's list")

    def set_diameter(self, pixels: float) -> None:
        """Set the cell diameter of the images (0: use them as they are)."""
        self._form.set_value("diameter", pixels)

    def set_image(self, name: str) -> None:
        """Choose the Image layer to segment (by name)."""
        self._image_combo.value = name

    @property
    def parameters(self) -> ParameterForm:
        """The reconstruction parameter form."""
        return self._params

    @property
    def options(self) -> dict[str, Any]:
        """The inference options shown (``PredictConfig`` names: device, diameter)."""
        return self._form.values()

    @property
    def model(self) -> str | None:
        """Key (built-in name or path) of the chosen model."""
        return self._model_combo.value

    @property
    def models(self) -> list[str]:
        """Keys (built-in names or paths) of the models in the list."""
        return list(self._model_combo.choices)

    def _on_model_chosen(self, key: str | None) -> None:
        """A model chosen (by the user, or :meth:`set_model`) is offered first from now on."""
        if key is not None:
            session_models.chosen = key
        self._on_model_changed()

    @property
    def card(self) -> str:
        """The model card shown for the chosen model (text)."""
        return self._card_text.toPlainText()

    def _on_model_changed(self, *_: Any) -> None:
        key = self._model_combo.value
        if key is None:
            return
        self._show_card(key)
        loaded = self._segmenters.get((key, self._form["device"].value))
        session = (m.arch for m in session_models.models() if str(m.path) == key)
        arch = loaded.arch if loaded is not None else next(session, None) or described_arch(key)
        if arch is not None:
            self._params.set_arch(arch)

    def _show_card(self, key: str) -> None:
        """Show the card of the model (from the yaml beside it: no torch, no weights read)."""
        from napari_cellseg.export.card import card_text, described_card

        card = described_card(key)
        text = card_text(card) if card else f"{Path(key).name}: no model description beside it"
        self._card_text.setPlainText(text)
        self._card_box.setToolTip(text)

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Segment the chosen image with the chosen model (the network runs once per image)."""
        key = self._model_combo.value
        name = self._image_combo.value
        if self.busy:
            self.notify("a run is in progress; stop it or wait for it to finish.", "warning")
            return
        if key is None:
            self.notify("no model; add a model file or train one first.", "warning")
            return
        layer = self.layer(name)
        if layer is None:
            self.notify("no Image layer chosen; open an image first.", "warning")
            return
        if layer.multiscale or not isinstance(layer.data, np.ndarray):
            source = huge.source_of(layer)
            if source is not None:  # too large for memory, perhaps: from its file
                self._segment_file(key, name, source)
                return
            if layer.multiscale:
                self.notify(
                    f"Image layer '{name}' is multiscale and was not opened from a file; save "
                    "it as an OME-Zarr image and open that, or open one resolution level.",
                    "error",
                )
                return
        options = self.options
        job = Job(key, options["device"], name, layer.data, bool(layer.rgb), options["diameter"])
        kept = self._cached(job)
        if kept is not None:
            self._start_reconstruction(job, kept)
            return
        segmenter = self._segmenters.get((job.model, job.device))
        self._frames = 1
        self.start_worker(
            worker.segment,
            job,
            segmenter if segmenter is not None else job.model,
            np.array(layer.data),  # a copy: the worker never reads the layer
            self._params.snapshot(),
            desc=f"Segmenting {name}",
            total=1,
            yielded=self._on_yielded,
            returned=lambda result: self._on_returned(job, result),
            aborted=self._on_aborted,
        )

    def _segment_file(self, key: str, name: str, source: Path) -> None:
        """Segment the image of layer ``name`` from its file, block by block, into a new
        label Zarr beside it (:mod:`.huge`)."""
        from napari_cellseg.predict.config import PredictConfig

        options = self.options
        arch = described_arch(key) or "omni"
        given = self._params.snapshot().get(arch, {})
        try:
            config = PredictConfig(
                model=key,
                device=options["device"],
                diameter=options["diameter"],
                reconstruction={k: v for k, v in given.items() if v is not None},
            )
        except CellsegError as err:
            self.notify(str(err), "error")
            return
        self._blocks_stop = threading.Event()
        destination = huge.free_destination(source)
        self.start_worker(
            huge.segment_file,
            config,
            source,
            destination,
            self._blocks_stop,
            desc=f"Segmenting {name} block by block",
            total=1,
            yielded=self._on_block,
            returned=lambda path: self._show_file_result(name, key, path),
            aborted=self._on_aborted,
        )

    def _on_block(self, event: huge.Blocks) -> None:
        desc = f"Segmenting block by block: pass {event.step}, block {event.done}/{event.total}"
        self.set_progress(event.done, event.total, desc)

    def stop(self) -> None:
        """Stop the running segmentation after the current batch of tiles, or the current
        block of an image segmented from its file (nothing is added or left)."""
        if self._worker is not None:
            self._blocks_stop.set()
            self._worker.quit()

    def _on_yielded(self, event: Any) -> None:
        from napari_cellseg.predict import FrameResult, TileProgress

        if isinstance(event, Loaded):
            self._segmenters[event.key] = event.segmenter
            self._params.set_arch(event.segmenter.arch)
        elif isinstance(event, Frames):
            self._frames = event.count
            self.set_progress(0, event.count)
        elif isinstance(event, TileProgress):
            where = f"frame {event.frame + 1}/{self._frames}, " if self._frames > 1 else ""
            desc = f"Segmenting: {where}tile {event.done}/{event.total}"
            self.set_progress(event.frame, self._frames, desc)
        elif isinstance(event, FrameResult):
            self.set_progress(event.frame + 1, self._frames)

    def _on_returned(self, job: Job, result: worker.Result) -> None:
        kept, labels = result
        self._cache[job.cache_key] = kept
        self._cache.move_to_end(job.cache_key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._show_result(job, kept, labels)

    def _on_aborted(self) -> None:
        self.set_status("Stopped; nothing was changed.")

    def finished(self) -> None:
        """Apply parameters changed while the worker ran."""
        if self._pending:
            self._pending = False
            self._reconstruct_last()

    def _cached(self, job: Job) -> Outputs | None:
        entry = self._cache.get(job.cache_key)
        return entry if entry is not None and entry.data is job.data else None

    # ------------------------------------------------------------------ reconstruction only
    def _on_param_changed(self) -> None:
        self._debounce.start()

    def _reconstruct_last(self) -> None:
        """Apply the current parameters to the last result (reconstruction only)."""
        if self._last is None:
            return
        if self.busy:
            self._pending = True
            return
        job, layer_name = self._last
        kept = self._cached(job)
        if kept is None or layer_name not in self._viewer.layers:
            return
        self._start_reconstruction(job, kept)

    def _start_reconstruction(self, job: Job, kept: Outputs) -> None:
        segmenter = self._segmenters[(job.model, job.device)]
        self._params.set_arch(segmenter.arch)
        self._frames = len(kept.outputs)
        self.start_worker(
            worker.reconstruct,
            segmenter,
            kept,
            self._params.values(),
            desc=f"Reconstructing {job.image}",
            total=len(kept.outputs),
            yielded=self._on_yielded,
            returned=lambda result: self._on_returned(job, result),
            aborted=self._on_aborted,
        )

    # ------------------------------------------------------------------ layers (main thread)
    def _show_file_result(self, image: str, key: str, path: Path) -> None:
        """Show the label Zarr of an image segmented from its file, read as napari draws."""
        source = self.layer(image)
        where = {} if source is None else {"scale": source.scale, "translate": source.translate}
        layer = self._viewer.add_labels(
            huge.labels_layer_data(path), name=f"{image} [{Path(key).stem}]", **where
        )
        self.notify(f"the labels of '{image}' are in {path}", "info")
        self.set_status(f"'{layer.name}': written to {path}.")

    def _show_result(self, job: Job, kept: Outputs, labels: list[np.ndarray]) -> None:
        segmenter = self._segmenters[(job.model, job.device)]
        stack = np.stack(labels).reshape(kept.lead_shape + labels[0].shape)
        name = f"{job.image} [{segmenter.name}]"
        layer, edited = results.show_labels(self._viewer, job, name, stack)
        if edited is not None:  # the user's corrections stay where they are
            self.notify(f"'{edited}' holds your edits, so the new result is in '{layer.name}'")
        if self._outputs_check.value:
            results.show_outputs(self._viewer, job, kept)
        self._last = (job, layer.name)
        n = sum(int(frame.max()) for frame in labels)  # labels are numbered 1..N per frame
        where = f" in {len(labels)} frames" if len(labels) > 1 else ""
        self.set_status(f"'{layer.name}': {n} objects{where}.")


def card_box() -> tuple[QGroupBox, QPlainTextEdit]:
    """A collapsed "Model card" box (tick it to show the card) and its read-only text."""
    box = QGroupBox("Model card")
    box.setCheckable(True)
    box.setChecked(False)
    text = QPlainTextEdit()
    text.setReadOnly(True)
    text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
    text.setMaximumHeight(180)
    text.setVisible(False)
    box.toggled.connect(text.setVisible)
    QVBoxLayout(box).addWidget(text)
    return box, text


def described_arch(key: str) -> str | None:
    """The family of a built-in model or a model file, from the yaml beside it (no torch);
    None when there is none or it does not say."""
    from napari_cellseg.models.builtin import resolve_model

    try:
        card = yaml.safe_load(resolve_model(key).with_suffix(".yaml").read_text(encoding="utf-8"))
    except (CellsegError, OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    spec = card.get("spec") if isinstance(card, dict) else None
    arch = spec.get("arch") if isinstance(spec, dict) else None
    return arch if isinstance(arch, str) else None
