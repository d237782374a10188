"""What the dock widgets share: the viewer's layers as choices, notifications, one worker.

:class:`DockWidget` is the base of the Annotation QC, Segment and Train widgets. It follows the
viewer's layers (added, removed, moved, renamed) and asks the widget to refresh its choices;
it shows messages as napari notifications (never traceback dialogs: a
:class:`~napari_cellseg.errors.CellsegError` from a worker becomes an error notification); and
it runs one thread worker at a time, with a cancellable progress bar and Run/Stop buttons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from napari_cellseg.errors import CellsegError

if TYPE_CHECKING:
    import napari.viewer
    from magicgui.widgets import ComboBox

_SHOW = {"error": show_error, "warning": show_warning, "info": show_info}


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
    constructor); those that list layers call :meth:`follow_layers` there and implement
    :meth:`refresh_layers`; those that run a worker add :meth:`run_row` to their layout and
    start it with :meth:`start_worker`.

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

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self._viewer = napari_viewer
        self._worker: Any = None
        self._progress: cancelable_progress | None = None
        self._status = QLabel()
        self._status.setWordWrap(True)
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
        """Show ``"<title>: <message>"`` as a napari notification.

        Parameters
        ----------
        message
            The text, for people.
        severity
            ``"info"``, ``"warning"`` or ``"error"``.
        """
        _SHOW[severity](f"{self.title}: {message}")

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
        self._status.setText(desc + "…")
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
            self._status.setText(f"{self.failed}: {error}")
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
