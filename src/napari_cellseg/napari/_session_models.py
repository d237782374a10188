"""Models trained in this napari session, shared by the Train and Segment widgets.

The Train widget :meth:`~ModelRegistry.add`\\ s each model it saves; the Segment widget (and the
Train widget's "start from" list) listen to :attr:`ModelRegistry.changed` and list them next to
the built-in models. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psygnal import Signal


@dataclass(frozen=True)
class SessionModel:
    """A model file written during this session.

    Attributes
    ----------
    name
        Label shown in the model lists (the file stem).
    path
        The model file (``.pt``).
    arch
        Model family: ``omni``, ``unet`` or ``dcan``.
    epochs
        Epochs it was trained for.
    stopped
        Whether the run was stopped before its last epoch.
    """

    name: str
    path: Path
    arch: str
    epochs: int = 0
    stopped: bool = False

    @property
    def label(self) -> str:
        """Text for a model list, e.g. ``my_model (omni, 12 epochs, this session)``."""
        return f"{self.name} ({self.arch}, {self.epochs} epochs, this session)"


class ModelRegistry:
    """The session's trained models, newest last, one entry per file.

    Attributes
    ----------
    changed
        Emitted (without arguments) after a model was added or replaced.
    chosen
        The model (built-in name or file) last chosen in a Segment widget in this session,
        offered first by the Segment widgets made later; None before any choice.
    """

    changed = Signal()

    def __init__(self) -> None:
        self._models: dict[Path, SessionModel] = {}
        self.chosen: str | None = None

    def add(self, model: SessionModel) -> None:
        """Register a model (a model of the same file replaces the older entry)."""
        path = Path(model.path).resolve()
        self._models.pop(path, None)
        self._models[path] = model
        self.changed.emit()

    def models(self) -> list[SessionModel]:
        """The registered models, oldest first."""
        return list(self._models.values())

    def follow(self, slot: Callable[[], Any], owner: Any) -> None:
        """Call ``slot`` after each change until the Qt object ``owner`` is destroyed.

        Parameters
        ----------
        slot
            Callback without arguments (e.g. a widget method refreshing a model list).
        owner
            A ``QObject`` (the widget); its ``destroyed`` signal disconnects ``slot``.
        """
        self.changed.connect(slot)
        owner.destroyed.connect(lambda *_: self.changed.disconnect(slot))

    def clear(self) -> None:
        """Forget every model and the last choice (used by tests)."""
        self._models.clear()
        self.chosen = None
        self.changed.emit()


#: The registry of this Python session.
session_models = ModelRegistry()
