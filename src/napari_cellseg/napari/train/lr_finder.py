"""The Train widget's "Find learning rate": the range test in the worker, its curve, the lr field.

:func:`find_learning_rate` is the thread-worker generator (the samples of the copied layers or
the folder, then :func:`napari_cellseg.tune.range_test`); :class:`LrFinder` is the button and
the curve under the options. Its result fills the widget's learning-rate field; the test trains
a scratch copy of the model and writes nothing the user keeps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QPushButton, QVBoxLayout, QWidget

from napari_cellseg.config import TrainConfig
from napari_cellseg.napari._frames import core_ready
from napari_cellseg.napari.train.data import TrainData
from napari_cellseg.napari.train.plot import BACKGROUND, COLORS, FOREGROUND
from napari_cellseg.napari.train.worker import build_items

if TYPE_CHECKING:
    from napari_cellseg.tune import RangePoint, RangeTestResult

#: Steps of the widget's range test (the CLI's default).
STEPS = 60
#: Points between two redraws of the curve while the test runs.
REDRAW_EVERY = 5


def find_learning_rate(
    config: TrainConfig, data: TrainData, *, stop: threading.Event, steps: int = STEPS
) -> Generator[RangePoint, None, RangeTestResult]:
    """Worker: the range test on the copied layers (or the folder); yields each step.

    Parameters
    ----------
    config
        The widget's options (crops, batch, family, optimiser).
    data
        Copies of the layer data (empty for a folder).
    stop
        Set it to end the test after the current step.
    steps
        Steps of the test.

    Returns
    -------
    RangeTestResult
        The curve and the suggested rate.
    """
    core_ready()
    from napari_cellseg.tune import range_test

    items, _ = build_items(config, data)
    return (yield from range_test(config, items, steps=steps, stop=stop, num_workers=0))


class LrFinder(QWidget):
    """A "Find learning rate" button and the loss-vs-rate curve of the last test.

    Parameters
    ----------
    owner
        The Train widget: its options, layer checks, worker and notifications.
    """

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self.owner = owner
        self.button = QPushButton("Find learning rate")
        self.button.setToolTip(
            "A short run with the learning rate rising from 1e-6 to 1 on the training data "
            f"({STEPS} steps); sets the learning rate to a tenth of the rate where the loss "
            "was lowest. Nothing is saved."
        )
        self.button.clicked.connect(self.find)
        self.figure = Figure(figsize=(4, 1.8), facecolor=BACKGROUND)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(150)
        self.canvas.setVisible(False)
        self.axes = self.figure.add_subplot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.canvas)
        self.points: list[RangePoint] = []
        self.result: RangeTestResult | None = None

    def find(self) -> bool:
        """Start the range test in a worker; returns whether it started."""
        owner = self.owner
        ready = owner.ready_to_run(accept_warnings=True)
        if ready is None:
            return False
        config, data = ready
        owner._stop = threading.Event()
        self.points, self.result = [], None
        self.canvas.setVisible(True)
        self._draw()
        owner.start_worker(
            find_learning_rate,
            config,
            data,
            stop=owner._stop,
            steps=STEPS,
            desc="Finding the learning rate",
            total=STEPS,
            yielded=self._on_point,
            returned=self._on_result,
        )
        return True

    def _on_point(self, point: RangePoint) -> None:
        self.points.append(point)
        self.owner.set_progress(point.step, point.steps)
        if point.step % REDRAW_EVERY == 0:
            self._draw()

    def _on_result(self, result: RangeTestResult) -> None:
        self.result = result
        lr = float(f"{result.suggested_lr:.3g}")
        box = self.owner._options.editor("learning_rate").native
        # enough decimals for three significant digits (a spin box rounds 3e-5 to 0.000)
        box.setDecimals(max(box.decimals(), 2 - math.floor(math.log10(lr))))
        self.owner._options.set_value("learning_rate", lr)
        self._draw()
        self.owner.set_status(
            f"Learning rate set to {result.suggested_lr:.3g}: a tenth of {result.min_loss_lr:.3g}, "
            f"where the loss was lowest ({len(result.lrs)} steps, {result.seconds:.0f} s)."
        )

    def _draw(self) -> None:
        """The curve so far (log rate axis), the suggestion marked once there is one."""
        ax = self.axes
        ax.clear()
        ax.set_facecolor(BACKGROUND)
        ax.tick_params(colors=FOREGROUND, labelsize=8)
        ax.set_xlabel("learning rate", color=FOREGROUND, fontsize=8)
        ax.set_ylabel("loss (smoothed)", color=FOREGROUND, fontsize=8)
        ax.set_xscale("log")
        lrs = [p.lr for p in self.points]
        values = [p.smoothed for p in self.points]
        if lrs:
            ax.plot(lrs, values, color=COLORS["train"], lw=1.5)
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
        if self.result is not None:
            ax.axvline(self.result.suggested_lr, color=COLORS["validation"], ls="--", lw=1)
        self.figure.tight_layout()
        self.canvas.draw_idle()
