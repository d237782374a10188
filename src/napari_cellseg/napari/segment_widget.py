"""Segment dock widget: apply a model to an Image layer and tune the mask reconstruction.

The widget is thin: models are :class:`napari_cellseg.predict.Segmenter` objects, the network
and the reconstruction run in a napari thread worker, and layers change only in the slots that
run on the main thread. The network outputs of the last runs are cached per (model, image
data), so that changing a reconstruction parameter re-runs only the reconstruction.
Torch is imported by the worker (through ``napari_cellseg.predict``), never at import time.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._session_models import session_models

if TYPE_CHECKING:
    import napari.viewer

    from napari_cellseg.predict import Segmenter

#: Metadata key of the layers this widget writes (value: ``{"image", "model"}``).
RESULT_KEY = "cellseg_segmentation"
#: Metadata key of the fingerprint of what Segment last wrote into a result layer (layers
#: reach a plugin through proxies, so the layer object itself cannot be the key).
WRITTEN_KEY = "cellseg_written"
#: Network outputs kept in memory (per model and image), most recent first.
CACHE_SIZE = 2
#: Reconstruction parameters are applied this long after the last change (ms).
DEBOUNCE_MS = 250
#: Reconstruction function of each family (its docstring gives the parameter tooltips).
RECONSTRUCTION = {"omni": "omni_masks", "unet": "unet_masks", "dcan": "dcan_masks"}


class _Cancelled(Exception):
    """Raised from the tile callback when the user pressed Stop."""


@dataclass(frozen=True)
class Frame:
    """One 2D frame of an Image layer, in the layout :meth:`Segmenter.prepare` takes.

    Attributes
    ----------
    index
        Position of the frame in the layer's leading (stack) axes; ``()`` for a 2D image.
    data
        The raw frame: ``(Y, X)``, ``(Y, X, C)`` (RGB) or ``(C, Y, X)``.
    channel_axis
        Channel axis of ``data``, or None for a single channel.
    """

    index: tuple[int, ...]
    data: np.ndarray
    channel_axis: int | None

    @property
    def spatial_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the frame."""
        shape = self.data.shape
        return shape[1:] if self.channel_axis == 0 else shape[:2]


def layer_frames(
    data: np.ndarray, rgb: bool, nchan: int, *, source: str
) -> tuple[list[Frame], tuple[int, ...]]:
    """Split an Image layer's array into the 2D frames a model with ``nchan`` channels takes.

    RGB layers have their channels last. A non-RGB layer is a stack of single-channel frames
    (one per plane of its leading axes), except that for a model of ``nchan > 1`` channels an
    axis of that size just before ``(Y, X)`` holds the channels (``CYX``, ``TCYX``).

    Parameters
    ----------
    data
        The layer data (a numpy array, copied from the layer).
    rgb
        Whether the layer is RGB(A).
    nchan
        Channels the model takes.
    source
        Layer name for error messages.

    Returns
    -------
    frames : list of Frame
        The frames, in stack order.
    lead_shape : tuple of int
        Shape of the stack axes (``()`` for one image): the labels are ``lead_shape + (Y, X)``.

    Raises
    ------
    CellsegError
        For an empty image or one whose channels do not fit the model.
    """
    if data.size == 0:
        raise CellsegError(f"Image layer '{source}' is empty ({data.shape}); choose another one")
    if data.ndim < (3 if rgb else 2):
        raise CellsegError(f"Image layer '{source}' has shape {data.shape}; it must be 2D or more")
    if rgb:
        channels, lead, axis = data.shape[-1], data.shape[:-3], -1
    elif nchan > 1 and data.ndim >= 3 and data.shape[-3] == nchan:
        channels, lead, axis = nchan, data.shape[:-3], 0
    else:
        channels, lead, axis = 1, data.shape[:-2], None
    usable = channels - (rgb and channels == 4)  # RGBA: alpha is dropped
    if nchan > 1 and usable != nchan:
        raise CellsegError(
            f"Image layer '{source}' has {usable} channel(s) but the model takes {nchan}: "
            f"choose an image with {nchan} channels (RGB, or {nchan} planes before Y, X)"
        )
    return [Frame(index, data[index], axis) for index in np.ndindex(*lead)], tuple(lead)


@functools.cache
def preload_core() -> threading.Thread:
    """Import torch and the training/prediction modules once, in a background thread.

    Called when a widget is created, so that the first run does not spend its first seconds
    importing (an import holds the interpreter lock for long stretches, which would stall the
    viewer during training). Returns the (daemon) thread; later calls return the same one.
    Code that imports torch elsewhere joins it first (:func:`core_ready`): two threads
    importing torch at once can see half-initialised modules.
    """

    def load() -> None:
        try:
            import torch._dynamo  # noqa: F401 - imported by the first optimiser, for long
            from torch.utils import tensorboard  # noqa: F401 - the training logger's

            import napari_cellseg.predict  # noqa: F401
            import napari_cellseg.train  # noqa: F401
        except Exception:  # best effort: the worker imports again and reports any problem
            return

    thread = threading.Thread(target=load, name="cellseg-preload", daemon=True)
    thread.start()
    return thread


def core_ready() -> None:
    """Wait until :func:`preload_core` has imported torch (call before importing it)."""
    preload_core().join()


def _param_help(function_name: str) -> dict[str, str]:
    """Parameter descriptions from the numpydoc docstring of a reconstruction function."""
    from napari_cellseg import reconstruction as postprocess

    doc = getattr(postprocess, function_name).__doc__ or ""
    section = doc.split("Parameters", 1)[-1].split("Returns", 1)[0]
    found: dict[str, str] = {}
    for names, text in re.findall(r"\n {4}(\w[\w, ]*)\n((?: {8}.*\n?)+)", section):
        for name in names.split(","):
            found[name.strip()] = " ".join(text.split())
    return found


class ParameterForm(QWidget):
    """Spin boxes for a family's reconstruction parameters (from ``POSTPROCESS_DEFAULTS``).

    ``None`` defaults (e.g. omni ``niter``) get an integer box whose lowest value reads
    "auto" and means None.

    Parameters
    ----------
    on_change
        Called (without arguments) whenever a value changes.
    """

    def __init__(self, on_change: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._on_change = on_change
        self._spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self._values: dict[str, dict[str, Any]] = {}  # per family, kept across model changes
        self.arch: str | None = None
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)
        self._hint = QLabel("The parameters appear once a model is loaded.")
        self._hint.setWordWrap(True)
        self._form.addRow(self._hint)

    def set_arch(self, arch: str) -> None:
        """Show the parameters of a model family (keeping values chosen earlier for it)."""
        if arch == self.arch:
            return
        core_ready()
        from napari_cellseg.predict import POSTPROCESS_DEFAULTS

        if self.arch is not None:
            self._values[self.arch] = self.values()
        while self._form.rowCount():
            self._form.removeRow(0)
        self._hint = None
        self._spins.clear()
        self.arch = arch
        helps = _param_help(RECONSTRUCTION[arch])
        chosen = self._values.get(arch, {})
        for name, default in POSTPROCESS_DEFAULTS[arch].items():
            value = chosen.get(name, default)
            if isinstance(default, float):
                spin: QSpinBox | QDoubleSpinBox = QDoubleSpinBox()
                spin.setRange(-10.0, 10.0)
                spin.setSingleStep(0.05)
                spin.setDecimals(2)
            else:
                spin = QSpinBox()
                spin.setRange(-1 if default is None else 0, 100_000)
                if default is None:
                    spin.setSpecialValueText("auto")
            spin.setValue(-1 if value is None else value)
            spin.setToolTip(helps.get(name, ""))
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda *_: self._on_change())
            self._spins[name] = spin
            self._form.addRow(name.replace("_", " ").capitalize(), spin)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Parameters per family: the shown ones and those chosen earlier for other families."""
        out = dict(self._values)
        if self.arch is not None:
            out[self.arch] = self.values()
        return out

    def values(self) -> dict[str, Any]:
        """Current parameters (``None`` for "auto")."""
        out: dict[str, Any] = {}
        for name, spin in self._spins.items():
            value = spin.value()
            out[name] = None if spin.specialValueText() and value == spin.minimum() else value
        return out

    def set_value(self, name: str, value: Any) -> None:
        """Set one parameter of the shown family (``None`` = "auto")."""
        spin = self._spins[name]
        spin.setValue(spin.minimum() if value is None else value)


@dataclass
class _Cached:
    """Network outputs of one image (all frames) under one model."""

    data: np.ndarray  # the layer's array: identity check, and keeps its id from being reused
    outputs: list[dict[str, np.ndarray]]
    lead_shape: tuple[int, ...]


@dataclass(frozen=True)
class _Job:
    """What a run is about: the model, the image layer and its data."""

    model: str
    device: str
    image: str
    data: np.ndarray
    rgb: bool
    diameter: float = 0.0


def _cache_key(job: _Job) -> tuple[str, str, int, float]:
    """Network outputs depend on the model, the device, the image and the diameter."""
    return job.model, job.device, id(job.data), job.diameter


class SegmentWidget(QWidget):
    """Segment an Image layer with a built-in, file or session model.

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
        self._segmenters: dict[tuple[str, str], Segmenter] = {}
        self._cache: OrderedDict[tuple[str, str, int, float], _Cached] = OrderedDict()
        self._files: list[str] = []
        self._session_seen: set[str] = set()  # session models already offered
        self._worker: Any = None
        self._stop = threading.Event()
        self._progress: cancelable_progress | None = None
        self._tiles: tuple[int, int, int, int] = (0, 0, 0, 0)  # frame, frames, tile, tiles
        self._last: tuple[_Job, str] | None = None  # last run and its result layer
        self._pending = False

        self._model_combo = QComboBox()
        self._model_combo.setToolTip("Built-in models, models trained in this session, files")
        self._model_combo.currentIndexChanged.connect(self._on_model_changed)
        browse = QPushButton("File…")
        browse.setToolTip("Add a model file (.pt) written by `cellseg train` or the Train widget")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self._model_combo, 1)
        model_row.addWidget(browse)
        self._image_combo = QComboBox()
        self._image_combo.setToolTip("Image layer to segment (2D, RGB or a stack)")
        self._device_combo = QComboBox()
        device_field = TrainConfig.__dataclass_fields__["device"]
        self._device_combo.addItems(device_field.metadata["choices"])
        self._device_combo.setToolTip(device_field.metadata["help"])
        self._device_combo.currentIndexChanged.connect(self._on_model_changed)
        self._diameter_spin = QDoubleSpinBox()
        self._diameter_spin.setRange(0.0, 1000.0)
        self._diameter_spin.setDecimals(1)
        self._diameter_spin.setSuffix(" px")
        self._diameter_spin.setSpecialValueText("as is")
        self._diameter_spin.setToolTip(
            "Mean cell diameter in this image, in pixels. The image is resized to the diameter "
            "the model was trained for (models trained with --diameter); 'as is': no resizing."
        )
        self._outputs_check = QCheckBox("Also add the network outputs as layers")
        self._outputs_check.setToolTip("Flow (as colours), distance or probability maps")

        form = QFormLayout()
        form.addRow("Model", model_row)
        form.addRow("Image", self._image_combo)
        form.addRow("Device", self._device_combo)
        form.addRow("Cell diameter", self._diameter_spin)
        self._params = ParameterForm(self._on_param_changed)
        params_box = QGroupBox("Reconstruction")
        QVBoxLayout(params_box).addWidget(self._params)

        self._run_button = QPushButton("Segment")
        self._run_button.clicked.connect(self.run)
        self._stop_button = QPushButton("Stop")
        self._stop_button.setEnabled(False)
        self._stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self._run_button, 1)
        buttons.addWidget(self._stop_button)
        self._status = QLabel("Choose a model and an image, then press Segment.")
        self._status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(params_box)
        layout.addWidget(self._outputs_check)
        layout.addLayout(buttons)
        layout.addWidget(self._status)
        layout.addStretch(1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._reconstruct_last)
        self._poll = QTimer(self)
        self._poll.setInterval(200)
        self._poll.timeout.connect(self._show_tiles)

        layers = self._viewer.layers
        layers.events.inserted.connect(self._refresh_images)
        layers.events.removed.connect(self._refresh_images)
        layers.events.inserted.connect(self._watch_name)
        for layer in layers:
            layer.events.name.connect(self._refresh_images)
        session_models.follow(self._refresh_models, self)
        self._refresh_models()
        self._refresh_images()
        preload_core()

    # ------------------------------------------------------------------ choices
    def _watch_name(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_images)

    def _refresh_images(self, *_: Any) -> None:
        current = self._image_combo.currentText()
        names = [layer.name for layer in self._viewer.layers if isinstance(layer, Image)]
        if current not in names:
            active = self._viewer.layers.selection.active
            current = active.name if isinstance(active, Image) else (names or [""])[-1]
        _set_items(self._image_combo, [(name, name) for name in names], current)

    def _refresh_models(self) -> None:
        """List built-in, session and file models; a model trained since the last refresh
        becomes the chosen one (it is the one the user wants to try next)."""
        from napari_cellseg.models.builtin import available

        session = [(m.label, str(m.path)) for m in reversed(session_models.models())]
        items = [(f"{name} (built-in)", name) for name in available()]
        items += session + [(Path(f).name, f) for f in self._files]
        current = self._model_combo.currentData()
        new = [key for _, key in session if key not in self._session_seen]
        self._session_seen.update(new)
        if new:
            current = new[0]
        _set_items(self._model_combo, items, current)
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
        key = str(key)
        index = self._model_combo.findData(key)
        if index < 0:
            index = self._model_combo.findData(str(Path(key).resolve()))
        if index < 0:
            raise CellsegError(f"model {key} is not in the Segment widget's list")
        self._model_combo.setCurrentIndex(index)

    def set_diameter(self, pixels: float) -> None:
        """Set the cell diameter of the images (0: use them as they are)."""
        self._diameter_spin.setValue(pixels)

    def set_image(self, name: str) -> None:
        """Choose the Image layer to segment (by name)."""
        self._image_combo.setCurrentText(name)

    @property
    def parameters(self) -> ParameterForm:
        """The reconstruction parameter form."""
        return self._params

    @property
    def models(self) -> list[str]:
        """Keys (built-in names or paths) of the models in the list."""
        return [self._model_combo.itemData(i) for i in range(self._model_combo.count())]

    def _on_model_changed(self, *_: Any) -> None:
        key = self._model_combo.currentData()
        if key is None:
            return
        arch = next((m.arch for m in session_models.models() if str(m.path) == key), None)
        loaded = self._segmenters.get((key, self._device_combo.currentText()))
        if loaded is not None:
            arch = loaded.arch
        if arch is not None:
            self._params.set_arch(arch)

    # ------------------------------------------------------------------ running
    @property
    def busy(self) -> bool:
        """Whether a segmentation or reconstruction is running."""
        return self._worker is not None

    def run(self) -> None:
        """Segment the chosen image with the chosen model (the network runs once per image)."""
        key = self._model_combo.currentData()
        name = self._image_combo.currentText()
        if self.busy:
            show_warning("Segment: a run is in progress; stop it or wait for it to finish.")
            return
        if key is None:
            show_warning("Segment: no model; add a model file or train one first.")
            return
        if name not in self._viewer.layers:
            show_warning("Segment: no Image layer chosen; open an image first.")
            return
        layer = self._viewer.layers[name]
        if layer.multiscale:
            show_error(f"Segment: Image layer '{name}' is multiscale; open one resolution level.")
            return
        data = layer.data
        job = _Job(
            key,
            self._device_combo.currentText(),
            name,
            data,
            bool(layer.rgb),
            self._diameter_spin.value(),
        )
        cached = self._cached(job)
        if cached is not None:
            self._start_reconstruction(job, cached)
            return
        segmenter = self._segmenters.get((job.model, job.device))
        image = np.array(data)  # a copy: the worker never reads the layer
        self._start(
            _segment,
            job,
            segmenter if segmenter is not None else job.model,
            image,
            self._params.snapshot(),
            total=1,
            desc=f"Segmenting {name}",
        )

    def stop(self) -> None:
        """Stop the running segmentation (nothing is added)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.quit()

    def _start(self, function: Callable, job: _Job, *args: Any, total: int, desc: str) -> None:
        self._stop = threading.Event()
        self._tiles = (0, 0, 0, 0)
        self._progress = cancelable_progress(total=total, desc=desc, cancel_callback=self.stop)
        worker = create_worker(
            function, job, *args, stop=self._stop, tiles=self._set_tiles, _ignore_errors=True
        )
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(lambda result: self._on_returned(job, result))
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(lambda: self._status.setText("Stopped; nothing was changed."))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run_button.setEnabled(False)
        self._stop_button.setEnabled(True)
        self._status.setText(desc + "…")
        self._poll.start()
        worker.start()

    def _set_tiles(self, frame: int, frames: int, tile: int, tiles: int) -> None:
        """Called from the worker: remember the progress (read by a main-thread timer)."""
        self._tiles = (frame, frames, tile, tiles)
        if self._stop.is_set():
            raise _Cancelled

    def _show_tiles(self) -> None:
        frame, frames, tile, tiles = self._tiles
        if self._progress is not None and tiles:
            where = f"frame {frame}/{frames}, " if frames > 1 else ""
            self._progress.set_description(f"Segmenting: {where}tile {tile}/{tiles}")

    def _on_yielded(self, event: tuple[str, Any]) -> None:
        kind, value = event
        if kind == "model":
            self._segmenters[(value[0], value[1])] = value[2]
            self._params.set_arch(value[2].arch)
        elif kind == "frames" and self._progress is not None:
            done, total = value
            self._progress.total = total
            self._progress.update(done - self._progress.n)

    def _on_returned(self, job: _Job, result: Any) -> None:
        if result is None:  # stopped
            self._status.setText("Stopped; nothing was changed.")
            return
        cached, labels = result
        self._cache[_cache_key(job)] = cached
        self._cache.move_to_end(_cache_key(job))
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._show_result(job, cached, labels)

    def _on_errored(self, error: Exception) -> None:
        if isinstance(error, CellsegError):
            show_error(f"Segment: {error}")
            self._status.setText(f"Not segmented: {error}")
            return
        raise error

    def _on_finished(self) -> None:
        self._worker = None
        self._poll.stop()
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._run_button.setEnabled(True)
        self._stop_button.setEnabled(False)
        if self._pending:
            self._pending = False
            self._reconstruct_last()

    def _cached(self, job: _Job) -> _Cached | None:
        entry = self._cache.get(_cache_key(job))
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
        cached = self._cached(job)
        if cached is None or layer_name not in self._viewer.layers:
            return
        self._start_reconstruction(job, cached)

    def _start_reconstruction(self, job: _Job, cached: _Cached) -> None:
        segmenter = self._segmenters[(job.model, job.device)]
        self._params.set_arch(segmenter.arch)
        params = self._params.values()
        self._start(
            _reconstruct_only,
            job,
            segmenter,
            cached,
            params,
            total=len(cached.outputs),
            desc=f"Reconstructing {job.image}",
        )

    # ------------------------------------------------------------------ layers (main thread)
    def _show_result(self, job: _Job, cached: _Cached, labels: list[np.ndarray]) -> None:
        segmenter = self._segmenters[(job.model, job.device)]
        stack = np.stack(labels).reshape(cached.lead_shape + labels[0].shape)
        source = self._viewer.layers[job.image] if job.image in self._viewer.layers else None
        meta = {RESULT_KEY: {"image": job.image, "model": job.model}}
        name = f"{job.image} [{segmenter.name}]"
        results = [self._written_here(layer) for layer in self._results(meta[RESULT_KEY], Labels)]
        layer = next((layer for layer, unchanged in results if unchanged), None)
        if layer is None:
            layer = self._viewer.add_labels(stack, name=name, metadata=meta, **_placement(source))
            edited = [old.name for old, _ in results]
            if edited:  # the user's corrections stay where they are
                show_info(
                    f"Segment: '{edited[-1]}' holds your edits, so the new result is in "
                    f"'{layer.name}'"
                )
        else:
            layer.data = stack
        layer.metadata[WRITTEN_KEY] = _digest(layer.data)
        if self._outputs_check.isChecked():
            self._show_outputs(job, cached, source)
        self._last = (job, layer.name)
        n = sum(int(frame.max()) for frame in labels)  # labels are numbered 1..N per frame
        where = f" in {len(labels)} frames" if len(labels) > 1 else ""
        self._status.setText(f"'{layer.name}': {n} objects{where}.")

    def _results(self, meta: dict[str, str], kind: type) -> list[Any]:
        """The layers of ``kind`` holding results of ``meta`` (image and model)."""
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, kind) and layer.metadata.get(RESULT_KEY) == meta
        ]

    def _written_here(self, layer: Any) -> tuple[Any, bool]:
        """``layer`` and whether it holds exactly what this widget last wrote into it (so a
        new result may replace it: it has no edits of the user's)."""
        return layer, layer.metadata.get(WRITTEN_KEY) == _digest(layer.data)

    def _result_layer(self, meta: dict[str, str], kind: type) -> Any:
        return next(iter(self._results(meta, kind)), None)

    def _show_outputs(self, job: _Job, cached: _Cached, source: Any) -> None:
        for output in cached.outputs[0]:
            maps = [_displayable(frame[output]) for frame in cached.outputs]
            data = np.stack(maps).reshape(cached.lead_shape + maps[0].shape)
            meta = {"image": job.image, "model": job.model, "output": output}
            layer = self._result_layer(meta, Image)
            if layer is not None:
                layer.data = data
                continue
            self._viewer.add_image(
                data,
                name=f"{job.image} {output}",
                metadata={RESULT_KEY: meta},
                rgb=output == "flow",
                colormap="gray" if output != "flow" else None,
                visible=False,
                **_placement(source),
            )


def _digest(data: Any) -> bytes:
    """A fingerprint of a layer's array (shape, dtype and every value)."""
    array = np.ascontiguousarray(data)
    digest = hashlib.blake2b(repr((array.shape, array.dtype.str)).encode(), digest_size=16)
    digest.update(memoryview(array).cast("B"))
    return digest.digest()


def _placement(source: Any) -> dict[str, Any]:
    """Scale and translate of the spatial axes of an Image layer (for its results)."""
    if source is None:
        return {}
    spatial = source.ndim - (1 if source.rgb else 0)
    return {"scale": source.scale[:spatial], "translate": source.translate[:spatial]}


def _displayable(values: np.ndarray) -> np.ndarray:
    """A flow ``(2, Y, X)`` as RGB colours (direction = hue, strength = value); maps as is."""
    if values.ndim == 2:
        return values
    from skimage.color import hsv2rgb

    angle = np.arctan2(values[0], values[1])
    strength = np.hypot(values[0], values[1])
    top = float(np.percentile(strength, 99)) or 1.0
    hsv = np.stack(
        [(angle + np.pi) / (2 * np.pi), np.ones_like(angle), np.clip(strength / top, 0, 1)], -1
    )
    return (hsv2rgb(hsv) * 255).astype(np.uint8)


# ---------------------------------------------------------------------- worker functions
def _segment(
    job: _Job,
    model: Segmenter | str,
    image: np.ndarray,
    params: dict[str, dict[str, Any]],
    *,
    stop: threading.Event,
    tiles: Callable[[int, int, int, int], None],
) -> Generator[tuple[str, Any], None, tuple[_Cached, list[np.ndarray]] | None]:
    """Worker: load the model if needed, run the network on every frame, reconstruct.

    ``params`` holds the reconstruction parameters per family (defaults for the others).
    Yields ``("model", (key, device, segmenter))`` and ``("frames", (done, total))``;
    returns the cache entry and the labels per frame, or None when stopped.
    """
    core_ready()
    from napari_cellseg.predict import Segmenter

    if isinstance(model, str):
        model = Segmenter.from_file(model, device=job.device)
    yield "model", (job.model, job.device, model)
    model.diameter = job.diameter
    chosen = params.get(model.arch, {})
    frames, lead = layer_frames(image, job.rgb, model.spec.nchan, source=job.image)
    outputs: list[dict[str, np.ndarray]] = []
    labels: list[np.ndarray] = []
    try:
        for i, frame in enumerate(frames):
            prepared = model.prepare(frame.data, channel_axis=frame.channel_axis, source=job.image)

            def tile_done(done: int, total: int, i: int = i) -> None:
                tiles(i + 1, len(frames), done, total)

            raw = model.network(prepared[0], progress=tile_done)
            outputs.append(model.named_outputs(raw))
            labels.append(model.reconstruct(outputs[-1], **chosen))
            yield "frames", (i + 1, len(frames))
            if stop.is_set():
                return None
    except _Cancelled:
        return None
    return _Cached(job.data, outputs, lead), labels


def _reconstruct_only(
    job: _Job,
    model: Segmenter,
    cached: _Cached,
    params: dict[str, Any],
    *,
    stop: threading.Event,
    tiles: Callable[[int, int, int, int], None],
) -> Generator[tuple[str, Any], None, tuple[_Cached, list[np.ndarray]] | None]:
    """Worker: new labels from cached network outputs (the network does not run)."""
    labels = []
    for i, outputs in enumerate(cached.outputs):
        labels.append(model.reconstruct(outputs, **params))
        yield "frames", (i + 1, len(cached.outputs))
        if stop.is_set():
            return None
    return cached, labels


def _set_items(combo: QComboBox, items: list[tuple[str, Any]], current: Any) -> None:
    """Replace a combo box's (text, data) items without emitting, keeping ``current``."""
    combo.blockSignals(True)
    combo.clear()
    for text, data in items:
        combo.addItem(text, data)
    index = combo.findData(current)
    if index >= 0:
        combo.setCurrentIndex(index)
    combo.blockSignals(False)
