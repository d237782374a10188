"""The Segment widget's forms: inference options from ``PredictConfig``, reconstruction
parameters from the model family's ``Params``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from magicgui.widgets import Container, Label

from napari_cellseg.families import get_family
from napari_cellseg.napari._forms import Form, option_field, param_field
from napari_cellseg.predict.config import PredictConfig

#: The :class:`PredictConfig` options the widget shows, in order.
INFERENCE = ("device", "diameter")


def inference_form(widgets: Sequence[Any] = ()) -> Form:
    """The inference options (:data:`INFERENCE`) after ``widgets`` (model and image choice)."""
    fields = {f.name: f for f in dataclasses.fields(PredictConfig)}
    return Form([option_field(fields[name]) for name in INFERENCE], widgets)


class ParameterForm(Container):
    """The reconstruction parameters of the chosen model's family (``family.Params``).

    Values chosen for a family are kept when another family is shown, and come back with it.
    A parameter whose default is None (e.g. omni ``niter``) has an "auto" box meaning None.

    Parameters
    ----------
    on_change
        Called (without arguments) whenever a value changes.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__()
        self.margins = (0, 0, 0, 0)
        self._on_change = on_change
        self._form: Form | None = None
        self._values: dict[str, dict[str, Any]] = {}  # per family, kept across model changes
        self.arch: str | None = None
        self._family: Any = None
        self.append(Label(value="The parameters appear once a model is loaded."))

    def set_arch(self, arch: str) -> None:
        """Show the parameters of a model family (keeping values chosen earlier for it)."""
        family = get_family(arch)
        if family is self._family:  # already shown
            return
        if self.arch is not None:
            self._values[self.arch] = self.values()
        self.clear()
        form = Form(param_field(f) for f in dataclasses.fields(family.Params))
        for name, value in self._values.get(arch, {}).items():
            form.set_value(name, value)
        form.changed.connect(lambda *_: self._on_change())
        self._form = form
        self._family = family
        self.arch = arch
        if not form.names:
            self.append(Label(value=f"{arch} models have no reconstruction parameters."))
        self.append(form)

    @property
    def names(self) -> list[str]:
        """The parameters shown."""
        return [] if self._form is None else self._form.names

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Parameters per family: the shown ones and those chosen earlier for other families."""
        out = dict(self._values)
        if self.arch is not None:
            out[self.arch] = self.values()
        return out

    def values(self) -> dict[str, Any]:
        """Current parameters (None for "auto")."""
        return {} if self._form is None else self._form.values()

    def set_value(self, name: str, value: Any) -> None:
        """Set one parameter of the shown family (None = "auto")."""
        if self._form is None:
            raise KeyError(f"no model family shown yet, so no parameter {name!r}")
        self._form.set_value(name, value)
