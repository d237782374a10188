"""What the dock widgets share: the viewer's layers as choices, notifications, one worker.

:class:`DockWidget` is the base of the Annotation QC, Segment and Train widgets. It follows the
viewer's layers (added, removed, moved, renamed) and asks the widget to refresh its choices;
it shows messages as napari notifications (never traceback dialogs: a
:class:`~napari_cellseg.errors.CellsegError` from a worker becomes an error notification); and
it runs one thread worker at a time, with a cancellable progress bar and Run/Stop buttons.

Each widget works at the size napari gives a dock, tabbed or stacked with others: its controls
(:attr:`DockWidget.body`) scroll vertically only, in a :class:`VerticalScrollArea` that is never
narrower than they are (nothing is clipped, there is no horizontal scroll bar), and what must
stay in reach (Run/Stop, the status line) goes below it (:attr:`DockWidget.footer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_cellseg.errors import CellsegError

if TYPE_CHECKING:
    import napari.viewer
    from magicgui.widgets import ComboBox

_SHOW = {"error": show_error, "warning": show_warning, "info": show_info}
#: Least height of a widget's scrolled controls (pixels): a few rows, never a strip.
MIN_SCROLL_HEIGHT = 150


def wrapped_label(text: str = "", label: QLabel | None = None) -> QLabel:
    """A label whose text wraps and can be selected, and which never widens its dock (a word
    longer than the dock is cut at the edge; :func:`show_text` puts the whole text in the
    tooltip). ``label``: make an existing label so (e.g. a magicgui ``Label``'s ``native``)."""
    label = QLabel(text) if label is None else label
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setMinimumWidth(1)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def show_text(label: QLabel, text: str) -> None:
    """Show ``text`` in a :func:`wrapped_label`, and all of it in its tooltip."""
    label.setText(text)
    label.setToolTip(text)


class VerticalScrollArea(QScrollArea):
    """A scroll area that scrolls vertically only and is never narrower than its content.

    Its minimum width is the content's plus the vertical scroll bar's, so the content is
    never clipped and no horizontal scroll bar is needed; its minimum height is at most
    ``min_height`` (below that it scrolls).

    Parameters
    ----------
    body
        The content.
    min_height
        Least height (pixels) before scrolling; less when the content is smaller.
    """

    def __init__(self, body: QWidget, min_height: int = MIN_SCROLL_HEIGHT) -> None:
        super().__init__()
        self._min_height = min_height
        self.setWidget(body)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """Pass the content's size changes (e.g. options unfolded) on to the dock's layout."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def _margin(self) -> int:
        return self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """The content's minimum width (and scroll bar); at most ``min_height`` tall."""
        body = self.widget().minimumSizeHint()
        return QSize(body.width() + self._margin(), min(body.height(), self._min_height))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """The content's size (and scroll bar): all of it shown when there is room."""
        body = self.widget().sizeHint()
        return QSize(body.width() + self._margin(), body.height() + 2 * self.frameWidth())


def set_choices(combo: ComboBox, names: Sequence[Any], fallback: Any) -> None:
    """Replace a magicgui combo box's choices without emitting, keeping the chosen one.

    Parameters
    ----------
    combo
        The combo box.
    names
        The new choices (values, or ``(text, value)`` pairs).
    fallback
        Chosen when the current value is not among the new choices (None: the first one).
    """
    values = [name[1] if isinstance(name, tuple) else name for name in names]
    current = combo.value if combo.value in values else fallback
    with combo.changed.blocked():
        combo.choices = list(names)
        if current in values:
            combo.value = current


class DockWidget(QWidget):
    """Base of the dock widgets.

    Subclasses set :attr:`title` and build their controls in :meth:`build` (called by the
    constructor): in a layout of :attr:`body` (scrolled vertically) and in :attr:`footer`
    (below it, always in view); those that list layers call :meth:`follow_layers` there and
    implement :meth:`refresh_layers`; those that run a worker add :meth:`run_row` to their
    layout and start it with :meth:`start_worker`.

    Parameters
    ----------
    napari_viewer
        The viewer the widget is docked in (injected by napari).
    parent
        Optional Qt parent.
    """

    #: The widget's name at the start of its notifications.
    title: ClassVar[str] = ""
    #: Status text in front of the message of an error that stopped a worker.
    failed: ClassVar[str] = "Failed"
    #: Whether the scrolled controls take the spare height (a table or a plot that grows);
    #: otherwise the footer follows them and the spare height stays below.
    fill: ClassVar[bool] = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._worker: Any = None
        self._progress: cancelable_progress | None = None
        self._status = wrapped_label()
        #: The controls, scrolled vertically (subclasses give it a layout).
        self.body = QWidget()
        self._scroll = VerticalScrollArea(self.body)
        if not self.fill:
            self._scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        below = QWidget()
        #: What stays in view below the controls (Run/Stop, the status line).
        self.footer = QVBoxLayout(below)
        margins = self.footer.contentsMargins()
        self.footer.setContentsMargins(margins.left(), 0, margins.right(), margins.bottom())
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self._scroll, int(self.fill))
        outer.addWidget(below)
        if not self.fill:
            outer.addStretch(1)
        self.build()

    def build(self) -> None:
        """Make the widget's controls and layout (subclasses)."""

    # ------------------------------------------------------------------ layers
    def follow_layers(self) -> None:
        """Call :meth:`refresh_layers` now and whenever a layer is added, removed, moved or
        renamed (bound methods: napari holds them weakly, so a closed widget is let go)."""
        layers = self._viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self._on_layers_changed)
        layers.events.moved.connect(self._on_layers_changed)
        for layer in layers:
            layer.events.name.connect(self._on_layers_changed)
        self.refresh_layers()

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._on_layers_changed)
        self.refresh_layers()

    def _on_layers_changed(self, *_: Any) -> None:
        self.refresh_layers()

    def refresh_layers(self) -> None:
        """Update the layer choices from the viewer (subclasses that list layers)."""

    def layer_names(self, kind: type, keep: Callable[[Any], bool] | None = None) -> list[str]:
        """Names of the viewer's layers of ``kind`` (that ``keep`` accepts), in layer order."""
        return [
            layer.name
            for layer in self._viewer.layers
            if isinstance(layer, kind) and (keep is None or keep(layer))
        ]

    def active_name(self, kind: type) -> str | None:
        """The name of the selected layer when it is of ``kind``."""
        active = self._viewer.layers.selection.active
        return active.name if isinstance(active, kind) else None

    def layer(self, name: str | None) -> Any:
        """The viewer's layer called ``name``, or None."""
        return self._viewer.layers[name] if name and name in self._viewer.layers else None

    # ------------------------------------------------------------------ notifications
    def notify(self, message: str, severity: str = "info") -> None:
        """Show ``"<title>: <message>"`` as a napari notification; a warning or an error is
        also written, whole and wrapped, in the status line (a notification shows one line).

        Parameters
        ----------
        message
            The text, for people.
        severity
            ``"info"``, ``"warning"`` or ``"error"``.
        """
        _SHOW[severity](f"{self.title}: {message}")
        if severity != "info":
            self.set_status(message[:1].upper() + message[1:])

    def set_status(self, text: str) -> None:
        """Show ``text`` in the status line (wrapped; all of it in the tooltip)."""
        show_text(self._status, text)

    # ------------------------------------------------------------------ the worker
    def run_row(self, text: str, run: Callable[[], Any], stop_tip: str = "") -> QHBoxLayout:
        """The Run and Stop buttons (``_run_button``, ``_stop_button``), in a row."""
        self._run_button = QPushButton(text)
        self._run_button.clicked.connect(lambda: run())
        self._stop_button = QPushButton("Stop")
        self._stop_button.setToolTip(stop_tip)
        self._stop_button.setEnabled(False)
        self._stop_button.clicked.connect(self.stop)
        row = QHBoxLayout()
        row.addWidget(self._run_button, 1)
        row.addWidget(self._stop_button)
        return row

    @property
    def busy(self) -> bool:
        """Whether the widget's worker is running."""
        return self._worker is not None

    def start_worker(
        self,
        function: Callable[..., Any],
        *args: Any,
        desc: str,
        total: int = 0,
        yielded: Callable[[Any], Any] | None = None,
        returned: Callable[[Any], Any] | None = None,
        aborted: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``function(*args, **kwargs)`` (a generator) in a napari thread worker.

        The slots run on the main thread; a progress bar (its cancel button calls
        :meth:`stop`) lives as long as the worker.

        Returns
        -------
        napari.qt.threading.GeneratorWorker
            The started worker.
        """
        self._progress = cancelable_progress(total=total, desc=desc, cancel_callback=self.stop)
        worker = create_worker(function, *args, _ignore_errors=True, **kwargs)
        for signal, slot in (("yielded", yielded), ("returned", returned), ("aborted", aborted)):
            if slot is not None:
                getattr(worker, signal).connect(slot)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run_button.setEnabled(False)
        self._stop_button.setEnabled(True)
        self.set_status(desc + "…")
        worker.start()
        return worker

    def set_progress(self, done: int, total: int, desc: str | None = None) -> None:
        """Move the progress bar (and change its text)."""
        bar = self._progress  # updating it may run the main loop, and the worker may end
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
        if desc is not None:
            bar.set_description(desc)
        bar.update(done - bar.n)

    def stop(self) -> None:
        """Stop the worker (subclasses say how)."""

    def _on_errored(self, error: Exception) -> None:
        if isinstance(error, CellsegError):
            self.notify(str(error), "error")
            self.set_status(f"{self.failed}: {error}")
            return
        raise error

    def _on_finished(self) -> None:
        self._worker = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._run_button.setEnabled(True)
        self._stop_button.setEnabled(False)
        self.finished()

    def finished(self) -> None:
        """Called on the main thread after the worker ended (subclasses' follow-up)."""
