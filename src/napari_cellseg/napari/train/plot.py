"""The Train widget's loss plot: a matplotlib figure in a Qt canvas (as napari-matplotlib does).

The x axis is the optimiser step (every event carries it, so the per-step loss, the epoch
means and the validation loss share it), the y axis the loss, on a log scale once the losses
span more than a factor of :data:`LOG_SPAN`.

Drawing is kept cheap for the viewer's main thread, which also runs napari while training:
adding an event only appends to lists; :meth:`LossPlot.redraw` draws the three lines over a
saved picture of the axes, ticks and legend (blitting, a few milliseconds) and draws the whole
figure (``draw_idle``, tens of milliseconds) only when the axes' ranges must change, which the
generous y range makes rare. The validation curve and its legend entry appear only once there
is a validation loss (a run without validation pairs shows none).
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter
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
MARGINS = (52, 44, 10, 8)
#: Most per-step points drawn (longer runs are thinned evenly).
MAX_STEP_POINTS = 2000
X_LABEL, Y_LABEL = "optimiser step", "loss"

Limits = tuple[bool, float, float]  # log scale, low, high


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
        self.canvas.mpl_connect("resize_event", self._on_resize)
        self.canvas.mpl_connect("draw_event", self._on_draw)
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
        self._lines = {  # animated: left out of full draws, drawn over the saved background
            name: self.axes.plot(
                [], [], color=COLORS[name], lw=1 + (name != "step"), label=text, animated=True
            )[0]
            for name, text in LABELS.items()
        }
        self._legend: tuple[str, ...] = ()
        self._background: Any = None
        self._limits: Limits | None = None
        self.clear()

    def _shown(self) -> tuple[str, ...]:
        """The curves drawn and listed in the legend: validation only once it has points."""
        return tuple(name for name in LABELS if name != "validation" or self.curves[name])

    def _update_legend(self, shown: tuple[str, ...]) -> None:
        for name, line in self._lines.items():
            line.set_visible(name in shown)
        legend = self.axes.legend(
            [self._lines[name] for name in shown],
            [LABELS[name] for name in shown],
            loc="upper right",
            fontsize=8,
            frameon=False,
        )
        for text in legend.get_texts():
            text.set_color(FOREGROUND)
        self._legend = shown

    def clear(self, total_steps: int = 1) -> None:
        """Forget the curves; the x axis will go to ``total_steps``."""
        self.curves: dict[str, list[tuple[int, float]]] = {name: [] for name in LABELS}
        self.total_steps = max(total_steps, 1)
        self._limits = None
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
        """Show the curves: lines over the saved axes, or the whole figure when the ranges
        change (then at the next paint, ``draw_idle``)."""
        values = []
        for name, points in self.curves.items():
            if name == "step":
                points = points[:: max(1, len(points) // MAX_STEP_POINTS)]
            self._lines[name].set_data([s for s, _ in points], [v for _, v in points])
            values += [v for _, v in points]
        limits = _limits(values, self._limits)
        shown = self._shown()
        if (
            self._background is None
            or limits != self._limits
            or shown != self._legend
            or self.axes.get_xlim() != (0, self.total_steps)
        ):
            self._limits = limits
            self._apply(limits)
            if shown != self._legend:
                self._update_legend(shown)
            self.canvas.draw_idle()
            return
        self.canvas.restore_region(self._background)
        self._draw_lines()
        self.canvas.blit(self.axes.bbox)

    def _apply(self, limits: Limits | None) -> None:
        """Set the axes' ranges (and the y scale; log ticks are labelled as plain numbers:
        matplotlib's default mathtext labels stall the first draw for tens of milliseconds)."""
        self.axes.set_xlim(0, self.total_steps)
        if limits is None:  # nothing drawn yet: a plain 0-1 range
            self.axes.set_ylim(0, 1)
            return
        log, low, high = limits
        if (self.axes.get_yscale() == "log") != log:
            self.axes.set_yscale("log" if log else "linear")
            if log:
                self.axes.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
                self.axes.yaxis.set_minor_formatter(NullFormatter())
        self.axes.set_ylim(low, high)

    def _draw_lines(self) -> None:
        for line in self._lines.values():
            self.axes.draw_artist(line)

    def _on_draw(self, _: Any) -> None:
        """After a full draw (without the lines): save the background, draw the lines on it."""
        self._background = self.canvas.copy_from_bbox(self.axes.bbox)
        self._draw_lines()

    def _on_resize(self, _: Any) -> None:
        """Keep :data:`MARGINS` around the axes at the figure's new size (drawn anew)."""
        self._background = None
        width, height = self.figure.bbox.width, self.figure.bbox.height
        left, bottom, right, top = MARGINS
        if width > left + right and height > bottom + top:
            self.figure.subplots_adjust(
                left=left / width,
                bottom=bottom / height,
                right=1 - right / width,
                top=1 - top / height,
            )


def _limits(values: list[float], shown: Limits | None) -> Limits | None:
    """The y range for ``values``: ``shown`` while it holds them and they fill half of it,
    else a new one with room to spare below (losses fall)."""
    if not values:
        return shown
    low, high = min(values), max(values)
    log = low > 0 and high / low > LOG_SPAN
    if shown is not None and shown[0] == log and shown[1] <= low and high <= shown[2]:
        scale = math.log if log else float
        if scale(high) - scale(low) >= 0.5 * (scale(shown[2]) - scale(shown[1])):
            return shown
    if log:
        return True, low / 2, high * 1.3
    span = high - low or abs(high) * 0.1 or 1.0
    bottom = low - 0.3 * span
    return False, max(bottom, 0.0) if low >= 0 else bottom, high + 0.1 * span
