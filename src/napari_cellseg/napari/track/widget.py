"""Track dock widget: link the cells of a labelled time-lapse, show the tracks, correct links.

The widget is thin. Tracking is :func:`napari_cellseg.track.engine.track_stack` run in a napari
thread worker (torch is imported there, never at import); the result goes to NEW layers
(``"<labels> tracked"``, the relabelled stack, and ``"<labels> tracks"``, a Tracks layer), the
input layer is never changed. The corrections are the pure functions of
:mod:`napari_cellseg.track.edit`, written into the result layer as one undoable edit each
(:func:`.result.apply_result`); the track table follows undo and redo
(:func:`.result.current_tracks`). Save writes a CTC result folder and the lineage CSV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit, SpinBox
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from napari_cellseg.errors import CellsegError
from napari_cellseg.napari._dock import DockWidget, set_choices, show_text, wrapped_label
from napari_cellseg.napari._forms import INT_MAX, make_editor, option_field, with_button
from napari_cellseg.napari._frames import core_ready, preload_core
from napari_cellseg.napari.track import result
from napari_cellseg.predict.config import PredictConfig
from napari_cellseg.track import edit
from napari_cellseg.track.ctc import RES_TABLE, Track

if TYPE_CHECKING:
    from napari_cellseg.track.engine import TrackProgress, TrackResult

#: Linking methods (those of :data:`napari_cellseg.track.engine.METHODS`, which imports torch).
METHODS = ("model", "laptrack")
#: Text of the image choice that means "no image".
NO_IMAGE = "none"
#: Name of the lineage table written beside the CTC result.
LINEAGE_CSV = "lineage.csv"


def track(
    images: np.ndarray | None,
    labels: np.ndarray,
    *,
    model: str | None,
    method: str,
    device: str,
    source: str,
) -> Generator[TrackProgress, None, TrackResult]:
    """Worker: :func:`~napari_cellseg.track.engine.track_stack` on copies of the layers."""
    core_ready()
    from napari_cellseg.track.engine import track_stack

    return (
        yield from track_stack(
            images, labels, model=model, method=method, device=device, source=source
        )
    )


class TrackWidget(DockWidget):
    """Track a Labels time-lapse (``T, Y, X``), show the tracks and correct their links.

    Made like every :class:`~napari_cellseg.napari._dock.DockWidget`, from the viewer.
    """

    title = "Track"
    failed = "Not tracked"
    fill = False

    def build(self) -> None:
        """Make the controls and follow the viewer's layers."""
        self._watched: Any = None  # the result layer whose events are connected

        self._labels_combo = ComboBox(
            name="labels", tooltip="Labels layer to track: a time-lapse (T, Y, X), ids per frame"
        )
        self._image_combo = ComboBox(
            name="image", tooltip="Image layer of the same frames (the tracking model needs it)"
        )
        self._method_combo = ComboBox(
            name="method",
            choices=list(METHODS),
            value="laptrack",
            tooltip="model: a tracking model (.pt) on the images and labels; "
            "laptrack: links cell centroids (LAP), no model and no image needed",
        )
        self._method_combo.changed.connect(self._on_method)
        self._model_edit = LineEdit(name="model", tooltip="Tracking model file (.pt)")
        model_row = with_button(self._model_edit, "File…", "Choose a tracking model", self._browse)
        device_field = next(f for f in dataclasses.fields(PredictConfig) if f.name == "device")
        self._device_combo = make_editor(option_field(device_field))
        form = Container(
            widgets=[
                self._labels_combo,
                self._image_combo,
                self._method_combo,
                model_row,
                self._device_combo,
            ]
        )
        form.margins = (0, 0, 0, 0)
        self._model_row = model_row

        self._result_combo = ComboBox(
            name="result", tooltip="Labels layer of a tracking result (ids are track ids)"
        )
        self._result_combo.changed.connect(self._on_result_chosen)
        self._track_spin = SpinBox(name="track", min=0, max=INT_MAX, tooltip="Track id")
        self._track_spin.changed.connect(self._on_track_spin)
        self._only_check = CheckBox(text="Show only this track", name="only")
        self._only_check.changed.connect(self._on_only)
        self._info = wrapped_label()
        result_form = Container(widgets=[self._result_combo, self._track_spin, self._only_check])
        result_form.margins = (0, 0, 0, 0)

        self._target_spin = SpinBox(name="to_track", min=1, max=INT_MAX, label="to track")
        reassign_row = with_button(
            self._target_spin,
            "Reassign",
            "The selected cell at this frame, and the rest of its track, join the track chosen",
            self.reassign,
        )
        self._daughter_spins = (
            SpinBox(name="daughter_1", min=1, max=INT_MAX, label="daughter 1"),
            SpinBox(name="daughter_2", min=1, max=INT_MAX, label="daughter 2"),
        )
        corrections = Container(widgets=[reassign_row, *self._daughter_spins])
        corrections.margins = (0, 0, 0, 0)
        break_button = QPushButton("Break link")
        break_button.setToolTip("Cut the selected track before this frame: the rest gets a new id")
        break_button.clicked.connect(lambda: self.break_link())
        divide_button = QPushButton("Mark division")
        divide_button.setToolTip(
            "The selected track divides at this frame into the two daughters (cells of this frame)"
        )
        divide_button.clicked.connect(lambda: self.mark_division())
        buttons = QHBoxLayout()
        buttons.addWidget(break_button)
        buttons.addWidget(divide_button)
        save_button = QPushButton("Save…")
        save_button.setToolTip(
            f"Write a CTC result folder (maskNNN.tif, {RES_TABLE}) and {LINEAGE_CSV}"
        )
        save_button.clicked.connect(self._choose_folder)

        result_box = QGroupBox("Result")
        result_layout = QVBoxLayout(result_box)
        result_layout.addWidget(result_form.native)
        result_layout.addWidget(self._info)
        result_layout.addWidget(QLabel("Corrections at the current frame (Ctrl+Z undoes):"))
        result_layout.addWidget(corrections.native)
        result_layout.addLayout(buttons)
        result_layout.addWidget(save_button)

        layout = QVBoxLayout(self.body)
        layout.addWidget(form.native)
        layout.addWidget(result_box)
        self.footer.addLayout(self.run_row("Track", self.run, "Stop after the current frame"))
        self.footer.addWidget(self._status)
        self.set_status("Choose a Labels time-lapse, then press Track.")
        self._on_method()
        self.follow_layers()
        preload_core()

    # ------------------------------------------------------------------ choices
    def refresh_layers(self) -> None:
        """List the Labels, Image and result layers."""
        labels = self.layer_names(Labels)
        set_choices(self._labels_combo, labels, self.active_name(Labels) or (labels or [None])[0])
        images = [(NO_IMAGE, None), *((name, name) for name in self.layer_names(Image))]
        set_choices(self._image_combo, images, None)
        results = self.layer_names(Labels, result.is_result)
        before = self._result_combo.value
        set_choices(self._result_combo, results, (results or [None])[-1])
        if self._result_combo.value != before or self._watched is None:
            self._on_result_chosen()

    def set_labels(self, name: str) -> None:
        """Choose the Labels layer to track (by name)."""
        self._labels_combo.value = name

    def set_image(self, name: str | None) -> None:
        """Choose the Image layer (by name; None: no image)."""
        self._image_combo.value = name

    def set_method(self, method: str, model: str | Path | None = None) -> None:
        """Choose the linking method (``model`` or ``laptrack``) and the model file."""
        self._method_combo.value = method
        if model is not None:
            self._model_edit.value = str(model)

    def set_result(self, name: str) -> None:
        """Choose the result layer to show and correct (by name)."""
        self._result_combo.value = name

    def _on_method(self, *_: Any) -> None:
        self._model_row.enabled = self._method_combo.value == "model"

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Tracking model", "", "Models (*.pt)")
        if path:
            self._model_edit.value = path

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Track the chosen Labels layer into new layers (the input is left unchanged)."""
        if self.busy:
            self.notify("tracking is in progress; stop it or wait for it to finish.", "warning")
            return
        name = self._labels_combo.value
        layer = self.layer(name)
        if layer is None:
            self.notify("no Labels layer chosen; open or segment a time-lapse first.", "warning")
            return
        if layer.multiscale or layer.ndim != 3:
            shape = "multiscale" if layer.multiscale else f"{layer.ndim}D {layer.data.shape}"
            self.notify(
                f"Labels layer '{name}' is {shape}; tracking needs a time-lapse (T, Y, X): "
                "segment a stack of frames first.",
                "error",
            )
            return
        method = self._method_combo.value
        image = self.layer(self._image_combo.value)
        model = self._model_edit.value.strip() or None
        if method == "model" and (model is None or image is None):
            self.notify(
                "the tracking model needs a model file (.pt) and the Image layer of the "
                "frames; or choose laptrack, which needs neither.",
                "error",
            )
            return
        images = np.array(image.data) if image is not None and method == "model" else None
        n_frames = int(layer.data.shape[0])
        self.start_worker(
            track,
            images,
            np.array(layer.data),  # copies: the worker never reads the layers
            model=model,
            method=method,
            device=self._device_combo.value,
            source=f"Labels layer '{name}'",
            desc=f"Tracking {name}",
            total=n_frames,
            yielded=self._on_progress,
            returned=lambda found: self._show_result(layer, found),
            aborted=lambda: self.set_status("Stopped; nothing was added."),
        )

    def stop(self) -> None:
        """Stop tracking after the current frame (nothing is added)."""
        if self._worker is not None:
            self._worker.quit()

    def _on_progress(self, progress: TrackProgress) -> None:
        done, total = progress.frame, progress.n_frames
        self.set_progress(done, total, f"Tracking: frame {done}/{total}")

    def _show_result(self, source: Labels, found: TrackResult) -> None:
        base = source.name
        layer = self._viewer.add_labels(
            found.labels,
            name=f"{base} tracked",
            metadata={result.TRACKS: list(found.tracks)},
            scale=source.scale,
            translate=source.translate,
        )
        tracks_layer = result.show_tracks(self._viewer, layer, found.tracks)
        self.set_result(layer.name)
        divisions = len({t.parent for t in found.tracks if t.parent})
        shown = f" and '{tracks_layer.name}'" if tracks_layer is not None else ""
        self.set_status(
            f"'{layer.name}'{shown}: {len(found.tracks)} tracks, "
            f"{divisions} division{'' if divisions == 1 else 's'}."
        )

    # ------------------------------------------------------------------ the result shown
    @property
    def result_layer(self) -> Labels | None:
        """The result layer chosen (a Labels stack with a track table), or None."""
        layer = self.layer(self._result_combo.value)
        return layer if result.is_result(layer) else None

    def _on_result_chosen(self, *_: Any) -> None:
        layer = self.result_layer
        if self._watched is not None:
            for event, slot in self._slots():
                getattr(self._watched.events, event).disconnect(slot)
        self._watched = layer
        if layer is not None:
            for event, slot in self._slots():
                getattr(layer.events, event).connect(slot)
            with self._track_spin.changed.blocked():
                self._track_spin.value = layer.selected_label
        self._show_info()

    def _slots(self) -> list[tuple[str, Callable[..., Any]]]:
        return [("selected_label", self._on_selected_label), ("set_data", self._on_pixels)]

    def _on_selected_label(self, *_: Any) -> None:
        layer = self._watched
        if layer is not None and self._track_spin.value != layer.selected_label:
            with self._track_spin.changed.blocked():
                self._track_spin.value = layer.selected_label
        self._show_info()

    def _on_track_spin(self, value: int) -> None:
        layer = self.result_layer
        if layer is not None:
            layer.selected_label = value
            layer.show_selected_label = bool(self._only_check.value)
        self._show_info()

    def _on_only(self, only: bool) -> None:
        layer = self.result_layer
        if layer is not None:
            layer.show_selected_label = bool(only)

    def _on_pixels(self, *_: Any) -> None:
        """After an undo or redo the table follows the pixels; the Tracks layer follows it."""
        layer = self._watched
        if layer is None or result.TRACKS not in layer.metadata:
            return
        before = layer.metadata[result.TRACKS]
        tracks = result.current_tracks(layer, recompute=False)
        if tracks is not before:
            result.show_tracks(self._viewer, layer, tracks)
            self._show_info()

    def _show_info(self) -> None:
        layer = self.result_layer
        if layer is None:
            show_text(self._info, "No result yet: track a Labels layer, or open a CTC folder.")
            return
        tracks = layer.metadata.get(result.TRACKS) or []
        chosen = int(self._track_spin.value)
        row = next((t for t in tracks if t.id == chosen), None)
        if row is None:
            show_text(self._info, f"{len(tracks)} tracks; {chosen} is none of them.")
            return
        daughters = edit.children(tracks, row.id)
        text = f"Track {row.id}: frames {row.begin}–{row.end}"
        text += f", parent {row.parent}" if row.parent else ", no parent"
        text += f", daughters {', '.join(map(str, daughters))}." if daughters else "."
        show_text(self._info, text)

    def current_frame(self) -> int:
        """The frame the viewer shows of the result layer."""
        layer = self.result_layer
        if layer is None:
            return 0
        point = self._viewer.dims.point[-layer.ndim :]
        frame = int(round(float(layer.world_to_data(point)[0])))
        return min(max(frame, 0), int(layer.data.shape[0]) - 1)

    def select_track(self, track_id: int) -> None:
        """Select a track of the result (its id, as the layer's selected label)."""
        self._track_spin.value = track_id

    # ------------------------------------------------------------------ corrections
    def reassign(self, track_id: int | None = None) -> None:
        """The selected cell at the current frame, and the rest of its track, join
        ``track_id`` (default: the "to track" box); see :func:`.edit.reassign`."""
        target = int(self._target_spin.value if track_id is None else track_id)
        cell, frame = int(self._track_spin.value), self.current_frame()
        self._correct(
            lambda labels, tracks: edit.reassign(labels, tracks, frame, cell, target),
            f"cell {cell} at frame {frame} joined track {target}",
            select=target,
        )

    def break_link(self) -> None:
        """Cut the selected track before the current frame (the rest gets a new id)."""
        chosen, frame = int(self._track_spin.value), self.current_frame()
        self._correct(
            lambda labels, tracks: edit.break_link(labels, tracks, chosen, frame),
            f"track {chosen} cut before frame {frame}",
            select=None,
        )

    def mark_division(self, daughters: tuple[int, int] | None = None) -> None:
        """The selected track divides at the current frame into ``daughters`` (default: the
        daughter boxes), two cells of that frame."""
        if daughters is None:
            daughters = (int(self._daughter_spins[0].value), int(self._daughter_spins[1].value))
        mother, frame = int(self._track_spin.value), self.current_frame()
        self._correct(
            lambda labels, tracks: edit.mark_division(labels, tracks, mother, frame, daughters),
            f"track {mother} divides at frame {frame}",
            select=mother,
        )

    def _correct(
        self,
        change: Callable[[np.ndarray, list[Track]], tuple[np.ndarray, list[Track]]],
        done: str,
        select: int | None,
    ) -> None:
        """Apply one correction to the result layer as one undoable edit."""
        layer = self.result_layer
        if layer is None:
            self.notify("no tracking result chosen; track a Labels layer first.", "warning")
            return
        try:
            before = result.current_tracks(layer)
            labels, tracks = change(np.asarray(layer.data), before)
            old = {t.id: t.parent for t in before}
            reparented = [t.id for t in tracks if t.id in old and old[t.id] != t.parent]
            if reparented and np.array_equal(labels, layer.data):
                # only parents changed: new ids make the edit one that undo can tell apart
                labels, tracks, moved = edit.renumber(labels, tracks, reparented)
                done += " (" + ", ".join(f"{a} is now {b}" for a, b in moved.items()) + ")"
            changed = result.apply_result(layer, labels, tracks, before)
        except CellsegError as err:
            self.notify(str(err), "error")
            return
        if not changed:
            self.notify("nothing to change: the tracks already are so.")
            return
        result.show_tracks(self._viewer, layer, tracks)
        new = sorted(set(t.id for t in tracks) - set(old))
        if select is None and new:
            select = new[0]
        if select is not None:
            self.select_track(select)
        self._show_info()
        self.notify(f"{done}; Ctrl+Z on '{layer.name}' undoes it.")
        self.set_status(done[:1].upper() + done[1:] + ".")

    # ------------------------------------------------------------------ saving
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "CTC result folder (e.g. 01_RES)")
        if not folder:
            return
        overwrite = False
        if (Path(folder) / RES_TABLE).exists():
            answer = QMessageBox.question(
                self, "Replace the result?", f"{folder} holds a result. Replace it?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
            overwrite = True
        self.save(folder, overwrite=overwrite)

    def save(self, folder: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write the chosen result as a CTC result folder and its lineage CSV.

        Parameters
        ----------
        folder
            The result folder (created if missing; its parent must exist).
        overwrite
            Replace the files of an earlier result.

        Returns
        -------
        list of pathlib.Path
            The files written (masks, track table, lineage CSV); empty when the problem was
            shown as a notification.
        """
        from napari_cellseg.io.outputs import refuse_existing
        from napari_cellseg.track.folders import write_result
        from napari_cellseg.track.table import lineage_rows, write_lineage_csv

        layer = self.result_layer
        if layer is None:
            self.notify("no tracking result to save; track a Labels layer first.", "warning")
            return []
        folder = Path(folder)
        try:
            labels = np.asarray(layer.data)
            tracks = result.current_tracks(layer)
            csv = folder / LINEAGE_CSV
            refuse_existing(
                [csv],
                overwrite=overwrite,
                what="lineage table",
                fix="choose another folder, or agree to replace the result",
            )
            written = write_result(folder, labels, tracks, overwrite=overwrite)
            written.append(write_lineage_csv(csv, lineage_rows(labels, tracks)))
        except CellsegError as err:
            self.notify(str(err), "error")
            return []
        self.notify(f"'{layer.name}' saved in {folder} ({RES_TABLE}, {LINEAGE_CSV}).")
        return written
