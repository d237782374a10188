"""Annotation QC dock widget: run the core checks on a Labels layer, inspect and fix problems.

The widget is thin: checks and fixes are :func:`napari_cellseg.qc.run_qc` and
:func:`napari_cellseg.qc.fix`. Each fix is one undoable edit of the Labels layer (``Ctrl+Z``
restores it) or goes to a new layer. Stacks ``(..., Y, X)`` are checked frame by frame.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, SpinBox
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images import as_labels
from napari_cellseg.napari._dock import DockWidget, set_choices, show_text, wrapped_label
from napari_cellseg.napari._edits import (
    LINKS_HISTORY,
    Frame,
    apply_frames,
    check_editable,
    current_links,
)
from napari_cellseg.napari._layers import as_frame, frame_links
from napari_cellseg.qc import fix as qc_fix
from napari_cellseg.qc import run_qc

if TYPE_CHECKING:
    from napari_cellseg.qc import Problem

#: Edge colour of the overlay rectangles per problem severity.
SEVERITY_COLORS = {"blocking": "#ff3b30", "warning": "#ffcc00", "info": "#34c7ff"}
#: Metadata key that marks the overlay layer (value: name of the checked Labels layer).
OVERLAY_KEY = "cellseg_qc_overlay_for"
#: run_qc keyword parameters shown as spin boxes (their defaults come from run_qc itself).
PARAMETERS = {"min_size": "Min size (px)", "max_gap": "Max gap (px)"}
#: Tooltip of the check box that adds run_qc's ``border`` check.
BORDER_TIP = (
    "Also list each cell that touches the image border (info). Off by default: cells cut by "
    "the field of view are normal."
)
NO_IMAGE = "(none)"
TARGET_EDIT, TARGET_NEW = "this layer (undoable)", "a new layer"
COLUMNS = ("Severity", "Check", "Labels", "Frame", "Message")
#: Least width of the Message column (pixels): the widget is made at least this much wider than
#: the other columns, so that messages wrap in a column of readable width instead of being cut.
MESSAGE_MIN_WIDTH = 170


@dataclass(frozen=True)
class Row:
    """One problem found in one frame of the checked layer."""

    frame: Frame
    problem: Problem


class QCWidget(DockWidget):
    """Check a Labels layer for annotation problems, list them, show them and fix them.

    Made like every :class:`~napari_cellseg.napari._dock.DockWidget`, from the viewer.
    """

    title = "Annotation QC"

    def build(self) -> None:
        """Make the controls and follow the viewer's layers."""
        self._rows: list[Row] = []
        self._checked_layer: str | None = None

        self._labels_combo = ComboBox(name="labels", tooltip="Labels layer to check")
        self._image_combo = ComboBox(
            name="image", tooltip="Image the labels annotate (checks that the shapes agree)"
        )
        self._labels_combo.changed.connect(self._guess_image)
        defaults = inspect.signature(run_qc).parameters
        self._spins = {
            name: SpinBox(
                value=int(defaults[name].default), min=0, max=100_000, name=name, label=text
            )
            for name, text in PARAMETERS.items()
        }
        self._border_check = CheckBox(
            value=bool(defaults["border"].default),
            text="Also list the cells touching the border",
            name="border",
            tooltip=BORDER_TIP,
        )
        form = Container(
            widgets=[
                self._labels_combo,
                self._image_combo,
                *self._spins.values(),
                self._border_check,
            ]
        )

        self._run_button = QPushButton("Run QC")
        self._run_button.clicked.connect(self.run)
        self.set_status("Pick a Labels layer and press Run QC.")

        self._table = QTableWidget(0, len(COLUMNS))
        self._table.setHorizontalHeaderLabels(COLUMNS)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._table.verticalHeader().setVisible(False)
        header = self._table.horizontalHeader()
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        # messages wrap in their column (rows as tall as their text) and show whole as tooltips
        self._table.setWordWrap(True)
        self._table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self._table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self._table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._table.itemSelectionChanged.connect(self._on_selection)
        self._table.setMinimumHeight(120)
        self._fit_width()
        self._details = wrapped_label()  # the selected problem's message, whole
        self._details.setVisible(False)

        self._target_combo = QComboBox()
        self._target_combo.addItems([TARGET_EDIT, TARGET_NEW])
        self._target_combo.setToolTip("Where fixes go: an undoable edit, or a copy")
        self._fix_button = QPushButton("Fix")
        self._fix_button.setEnabled(False)
        self._fix_button.clicked.connect(self.fix_selected)
        fix_row = QHBoxLayout()
        fix_row.addWidget(QLabel("Fixes go to"))
        fix_row.addWidget(self._target_combo, 1)

        layout = QVBoxLayout(self.body)
        layout.addWidget(form.native)
        layout.addWidget(self._run_button)
        layout.addWidget(self._status)
        layout.addWidget(self._table, 1)
        self.footer.addWidget(self._details)
        self.footer.addLayout(fix_row)
        self.footer.addWidget(self._fix_button)
        self.follow_layers()

    # ------------------------------------------------------------------ layer choices
    def refresh_layers(self) -> None:
        """Fill the layer pickers from the viewer, keeping the current choices when possible."""
        labels = self.layer_names(Labels)
        set_choices(self._image_combo, [NO_IMAGE, *self.layer_names(Image)], NO_IMAGE)
        set_choices(self._labels_combo, labels, self.active_name(Labels))
        self._guess_image()

    def _guess_image(self, *_: Any) -> None:
        """Pick the image that the chosen labels annotate when none is chosen yet."""
        if self._image_combo.value not in (None, NO_IMAGE):
            return
        names = [name for name in self._image_combo.choices if name != NO_IMAGE]
        base = (self._labels_combo.value or "").split("_masks")[0]
        if not base:
            return
        # "cells" for "cells_masks", "train images" or "train [ch0]" for "train_masks"
        for name in sorted(names, key=lambda name: name != base):
            if name.startswith(base):
                self._image_combo.value = name
                return

    def set_layers(self, labels: str, image: str | None = None) -> None:
        """Choose the Labels layer to check and, optionally, its Image layer (by name).

        Parameters
        ----------
        labels
            Name of a Labels layer in the viewer.
        image
            Name of an Image layer, or None for no image.
        """
        self._labels_combo.value = labels
        self._image_combo.value = image or NO_IMAGE

    # ------------------------------------------------------------------ running
    @property
    def rows(self) -> list[Row]:
        """The problems listed in the table, in table order."""
        return list(self._rows)

    def _params(self) -> dict[str, int]:
        return {name: spin.value for name, spin in self._spins.items()}

    @property
    def border(self) -> bool:
        """Whether the checks also list the cells that touch the image border."""
        return bool(self._border_check.value)

    @border.setter
    def border(self, value: bool) -> None:
        self._border_check.value = value

    def run(self) -> None:
        """Run the checks on the chosen Labels layer and list, draw and summarise the problems."""
        layer = self.layer(self._labels_combo.value)
        if layer is None:
            self.notify("no Labels layer chosen; open or create one first.", "warning")
            return
        try:
            self._rows = self._check(layer)
        except CellsegError as err:
            self.notify(f"'{layer.name}': {err}", "error")
            return
        self._checked_layer = layer.name
        self._fill_table(layer.ndim > 2)
        self._draw_overlay(layer)
        self.set_status(_summary(layer.name, self._rows))

    def _check(self, layer: Labels) -> list[Row]:
        if layer.multiscale:
            raise CellsegError("multiscale labels are not supported; open a single resolution.")
        if layer.ndim < 2:
            raise CellsegError("the layer has fewer than 2 dimensions; pick a 2D labels layer.")
        image = self.layer(self._image_combo.value)
        image_shape = None
        if image is not None:
            shape = image.data.shape[:-1] if image.rgb else image.data.shape
            image_shape = tuple(shape[-2:])
        params = self._params()
        links = current_links(layer.data, layer.metadata)
        rows: list[Row] = []
        for frame in np.ndindex(layer.data.shape[:-2]):
            labels = np.asarray(layer.data[frame])
            where = f"frame {frame} of " if frame else ""
            as_labels(labels, source=f"{where}Labels layer '{layer.name}'")  # refuses negatives
            report = run_qc(
                labels,
                image_shape,
                frame_links(links, frame),
                **params,
                border=self.border,
                source=layer.name,
            )
            rows.extend(Row(frame, problem) for problem in report.problems)
        return rows

    def _fill_table(self, show_frames: bool) -> None:
        self._table.clearSelection()
        self._table.setRowCount(len(self._rows))
        for i, row in enumerate(self._rows):
            problem = row.problem
            cells = (
                problem.severity,
                problem.check,
                ", ".join(str(label) for label in problem.labels),
                ",".join(str(index) for index in row.frame),
                problem.message,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(problem.message)
                self._table.setItem(i, column, item)
            color = SEVERITY_COLORS.get(problem.severity)
            if color:
                self._table.item(i, 0).setForeground(QColor(color))
        self._table.setColumnHidden(COLUMNS.index("Frame"), not show_frames)
        self._fit_width()
        self._fix_button.setEnabled(False)
        self._fix_button.setText("Fix")

    def _fit_width(self) -> None:
        """Make the table at least as wide as its columns need, with
        :data:`MESSAGE_MIN_WIDTH` for the messages (the dock follows: nothing is clipped)."""
        table, header = self._table, self._table.horizontalHeader()
        columns = sum(
            max(header.sectionSizeHint(column), table.sizeHintForColumn(column))
            for column in range(len(COLUMNS) - 1)
            if not table.isColumnHidden(column)
        )
        scroll_bar = table.verticalScrollBar().sizeHint().width()
        table.setMinimumWidth(columns + MESSAGE_MIN_WIDTH + scroll_bar + 2 * table.frameWidth())

    # ------------------------------------------------------------------ overlay
    def _overlay(self) -> Any:
        for layer in self._viewer.layers:
            if OVERLAY_KEY in layer.metadata:
                return layer
        return None

    def _draw_overlay(self, labels: Labels) -> None:
        """Show each problem's bounding box as a rectangle coloured by severity."""
        old = self._overlay()
        if old is not None:
            self._viewer.layers.remove(old)
        boxed = [row for row in self._rows if row.problem.bbox is not None]
        if not boxed:
            return
        rectangles = [_rectangle(row.frame, row.problem.bbox) for row in boxed]
        features = {
            "check": [row.problem.check for row in boxed],
            "severity": [row.problem.severity for row in boxed],
            # info findings (e.g. cells cut by the border) are often intended: box, no caption
            "caption": [
                "" if row.problem.severity == "info" else row.problem.check for row in boxed
            ],
        }
        colors = [SEVERITY_COLORS.get(row.problem.severity, "#ffffff") for row in boxed]
        self._viewer.add_shapes(
            rectangles,
            shape_type="rectangle",
            name=f"QC problems ({labels.name})",
            edge_color=colors,
            face_color="transparent",
            edge_width=max(0.5, min(labels.data.shape[-2:]) / 400),
            features=features,
            text={"string": "{caption}", "color": "white", "size": 9, "anchor": "upper_left"},
            scale=labels.scale,
            translate=labels.translate,
            metadata={OVERLAY_KEY: labels.name},
        )
        self._viewer.layers.selection.active = labels

    # ------------------------------------------------------------------ navigation
    def _selected_row(self) -> Row | None:
        selected = self._table.selectionModel().selectedRows()
        return self._rows[selected[0].row()] if selected else None

    def _on_selection(self) -> None:
        row = self._selected_row()
        show_text(self._details, "" if row is None else row.problem.message)
        self._details.setVisible(row is not None)
        if row is None:
            self._fix_button.setEnabled(False)
            return
        check = row.problem.check
        fixable = bool(row.problem.fixable)
        count = sum(r.problem.check == check for r in self._rows)
        self._fix_button.setEnabled(fixable)
        self._fix_button.setText(f"Fix all '{check}' problems ({count})" if fixable else "Fix")
        self._fix_button.setToolTip("" if fixable else f"'{check}' problems are fixed by hand")
        self.focus(row)

    def focus(self, row: Row) -> None:
        """Centre and zoom the view on a problem (moving to its frame in a stack).

        Parameters
        ----------
        row
            One of :attr:`rows`.
        """
        layer = self.layer(self._labels_combo.value)
        if layer is None or layer.name != self._checked_layer:
            return
        labels = row.problem.labels
        if labels and labels[0] > 0:
            layer.selected_label = int(labels[0])
        if row.problem.bbox is None:
            return
        y0, x0, y1, x1 = row.problem.bbox
        lo = np.asarray(layer.data_to_world([*row.frame, y0, x0]), dtype=float)
        hi = np.asarray(layer.data_to_world([*row.frame, y1, x1]), dtype=float)
        dims = self._viewer.dims
        offset = dims.ndim - layer.ndim
        for axis in range(len(row.frame)):
            dims.set_point(offset + axis, lo[axis])
        camera = self._viewer.scene.camera
        camera.center = tuple((lo[-2:] + hi[-2:]) / 2)
        # show the box with context: three times its size, and at least 64 pixels
        pixel = np.abs(np.asarray(layer.scale[-2:], dtype=float))
        span = np.maximum(3 * np.abs(hi[-2:] - lo[-2:]), 64 * pixel)
        camera.zoom = float(np.min(np.asarray(self._viewer.canvas.size) / span) * 0.9)

    # ------------------------------------------------------------------ fixing
    def fix_selected(self) -> None:
        """Fix every problem of the selected row's check (all frames) as one edit, then re-run.

        Links (``metadata['links']``) whose labels the fix removed are dropped.
        """
        row = self._selected_row()
        layer = self.layer(self._labels_combo.value)
        if row is None or layer is None or layer.name != self._checked_layer:
            self.notify("run the checks and select a problem first.", "warning")
            return
        check = row.problem.check
        frames = sorted({r.frame for r in self._rows if r.problem.check == check})
        params = self._params()
        to_new_layer = self._target_combo.currentText() == TARGET_NEW
        try:
            if not to_new_layer:
                check_editable(layer)
            before = current_links(layer.data, layer.metadata)
            fixed = {
                frame: qc_fix(
                    np.asarray(layer.data[frame]), check, links=frame_links(before, frame), **params
                )
                for frame in frames
            }
            links = _links_after(before, fixed, check)
            if to_new_layer:
                target = self._new_layer_with(layer, fixed, links)
                message = f"fixed '{check}' problems of '{layer.name}' into '{target}'"
            else:
                changed = apply_frames(layer, fixed, links=links)  # undo restores links too
                target = layer.name
                message = f"fixed '{check}' problems of '{target}' ({changed} pixels changed)"
                message += "; Ctrl+Z on the layer undoes it"
        except CellsegError as err:
            self.notify(f"'{layer.name}': {err}", "error")
            return
        self.notify(f"{message}.")
        self._labels_combo.value = target
        self.run()

    def _new_layer_with(self, layer: Labels, fixed: dict[Frame, np.ndarray], links: Any) -> str:
        dtype = np.result_type(layer.data.dtype, *(new.dtype for new in fixed.values()))
        data = np.array(layer.data, dtype=dtype)
        for frame, new in fixed.items():
            data[frame] = new
        metadata = {k: v for k, v in layer.metadata.items() if k != LINKS_HISTORY}
        if links is not None:
            metadata["links"] = links
        new_layer = self._viewer.add_labels(
            data,
            name=f"{layer.name} fixed",
            scale=layer.scale,
            translate=layer.translate,
            metadata=metadata,
        )
        return new_layer.name


def _links_after(links: Any, fixed: dict[Frame, np.ndarray], check: str) -> Any:
    """The layer's links after a fix: pairs whose labels are gone are dropped (all of them
    after a semantic-mask fix, whose new ids are unrelated to the old ones); None if the layer
    has no links."""
    if not links:
        return None

    def kept(pairs: set[tuple[int, int]], labels: np.ndarray) -> set[tuple[int, int]]:
        if check == "semantic_mask":
            return set()
        present = set(np.unique(labels).tolist())
        return {(a, b) for a, b in pairs if a in present and b in present}

    if isinstance(links, dict):
        out = {}
        for key, pairs in links.items():
            frame = as_frame(key)
            out[key] = kept(pairs, fixed[frame]) if frame in fixed else pairs
        return out
    return kept(links, fixed[()]) if () in fixed else links


def _rectangle(frame: Frame, bbox: tuple[int, int, int, int]) -> np.ndarray:
    """Corners of a problem's box (pixel edges, so that one-pixel problems stay visible)."""
    y0, x0, y1, x1 = (v - 0.5 for v in bbox)
    corners = [(y0, x0), (y0, x1), (y1, x1), (y1, x0)]
    return np.array([[*frame, y, x] for y, x in corners], dtype=float)


def _summary(name: str, rows: list[Row]) -> str:
    if not rows:
        return f"'{name}': no problems found."
    found = Counter(row.problem.severity for row in rows)
    parts = ", ".join(f"{found[s]} {s}" for s in SEVERITY_COLORS if found[s])
    fixable = sum(bool(row.problem.fixable) for row in rows)
    return f"'{name}': {len(rows)} problems ({parts}); {fixable} fixable. Click a row to go there."
