"""The Train widget's loss plot: a matplotlib figure in a Qt canvas (as napari-matplotlib does).

The x axis is the optimiser step (every event carries it, so the per-step loss, the epoch
means and the validation loss share it), the y axis the loss, on a log scale once the losses
span more than a factor of :data:`LOG_SPAN`. Adding an event only appends to lists; a redraw
updates the lines' data and asks for a paint with ``draw_idle``, so the widget redraws at
most every few hundred milliseconds while training.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QVBoxLayout, QWidget

#: Background and text colours, matching napari's dark theme.
BACKGROUND, FOREGROUND = "#262930", "#d1d5db"
COLORS = {"step": "#6b7280", "train": "#3d9df2", "validation": "#f2a33d"}
LABELS = {
    "step": "training (per step)",
    "train": "training (epoch mean)",
    "validation": "validation",
}
#: Ratio of the largest to the smallest loss above which the y axis is logarithmic.
LOG_SPAN = 20.0
#: Room around the axes for the tick labels and the axis labels (pixels: left, bottom, right,
#: top); fixed margins cost nothing per draw, unlike a layout engine.
MARGINS = (52, 38, 10, 8)
#: Most per-step points drawn (longer runs are thinned evenly).
MAX_STEP_POINTS = 2000
X_LABEL, Y_LABEL = "optimiser step", "loss"


class LossPlot(QWidget):
    """Training loss per step and per epoch, and validation loss, against the optimiser step.

    Attributes
    ----------
    axes
        The matplotlib axes (labelled ``optimiser step`` and ``loss``).
    curves
        ``{"step", "train", "validation"}`` -> list of ``(step, loss)`` points.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4, 2), facecolor=BACKGROUND)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(170)
        self.canvas.mpl_connect("resize_event", lambda _: self._fit_margins())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.axes = self.figure.add_subplot()
        self.axes.set_facecolor(BACKGROUND)
        self.axes.set_xlabel(X_LABEL, color=FOREGROUND)
        self.axes.set_ylabel(Y_LABEL, color=FOREGROUND)
        self.axes.tick_params(colors=FOREGROUND, labelsize=8)
        for spine in self.axes.spines.values():
            spine.set_color(COLORS["step"])
        self._lines = {
            name: self.axes.plot([], [], color=COLORS[name], lw=1 + (name != "step"), label=text)[0]
            for name, text in LABELS.items()
        }
        legend = self.axes.legend(loc="upper right", fontsize=8, frameon=False)
        for text in legend.get_texts():
            text.set_color(FOREGROUND)
        self.clear()

    def clear(self, total_steps: int = 1) -> None:
        """Forget the curves; the x axis will go to ``total_steps``."""
        self.curves: dict[str, list[tuple[int, float]]] = {name: [] for name in LABELS}
        self.total_steps = max(total_steps, 1)
        self.redraw()

    def add(self, event: Any) -> None:
        """Add a training event (a :class:`napari_cellseg.train.Progress`); drawn on the next
        :meth:`redraw`."""
        self.total_steps = max(event.total_steps, 1)
        if not math.isfinite(event.loss):
            return
        if event.kind == "step":
            self.curves["step"].append((event.step, event.loss))
            return
        self.curves["train"].append((event.step, event.loss))
        if event.val_loss is not None and math.isfinite(event.val_loss):
            self.curves["validation"].append((event.step, event.val_loss))

    def redraw(self) -> None:
        """Update the lines and the axes' ranges, and schedule a paint (``draw_idle``)."""
        values = []
        for name, points in self.curves.items():
            if name == "step":
                points = points[:: max(1, len(points) // MAX_STEP_POINTS)]
            self._lines[name].set_data([s for s, _ in points], [v for _, v in points])
            values += [v for _, v in points]
        self.axes.set_xlim(0, self.total_steps)
        if values:
            low, high = min(values), max(values)
            log = low > 0 and high / low > LOG_SPAN
            self.axes.set_yscale("log" if log else "linear")
            pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.5
            self.axes.set_ylim(low / 1.1 if log else low - pad, high * 1.1 if log else high + pad)
        self._fit_margins()
        self.canvas.draw_idle()

    def _fit_margins(self) -> None:
        """Keep :data:`MARGINS` around the axes at the figure's current size."""
        width, height = self.figure.bbox.width, self.figure.bbox.height
        left, bottom, right, top = MARGINS
        if width > left + right and height > bottom + top:
            self.figure.subplots_adjust(
                left=left / width,
                bottom=bottom / height,
                right=1 - right / width,
                top=1 - top / height,
            )
