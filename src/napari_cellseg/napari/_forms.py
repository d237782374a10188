"""magicgui forms generated from dataclass fields: the options and the reconstruction parameters.

Two kinds of fields describe themselves in their metadata:

- options (:func:`napari_cellseg.options.option`, the fields of ``TrainConfig`` and
  ``PredictConfig``): ``help``, ``choices`` (a tuple or a callable) and ``type`` (the
  command line's converter), read by :func:`option_field`;
- reconstruction parameters (:func:`napari_cellseg.families.param`): ``help``, ``minimum``,
  ``maximum`` and ``step``, read by :func:`param_field`.

:class:`Form` makes one magicgui widget per field, whose tooltip is the field's help: a check
box for a flag, a combo box for choices, spin boxes for numbers (an "auto" box for a number
whose default ``None`` means automatic), and a line edit parsed like the command line for the
rest (sizes such as ``224,224``, optional values).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from qtpy.QtWidgets import QSizePolicy

from napari_cellseg.errors import CellsegError
from napari_cellseg.options import choices_of, default_of

#: Largest value of an integer or float box without a maximum of its own.
INT_MAX, FLOAT_MAX = 1_000_000_000, 1e6
#: Text of the combo-box entry that means None (the option's built-in default).
NONE_CHOICE = "default"


@dataclass(frozen=True)
class FieldSpec:
    """What a form needs to know of one field.

    Attributes
    ----------
    name, default, help
        The field's name, default and help text (the tooltip).
    kind
        ``"bool"``, ``"int"``, ``"float"`` or ``"text"`` (a line edit).
    choices
        The allowed values (a combo box), or None.
    optional
        Whether None is a value (an "auto" box for numbers, an empty line edit for text).
    minimum, maximum, step
        The range of a number box (None: the form's defaults).
    parse
        Converter of a line edit's text (the command line's).
    """

    name: str
    default: Any
    help: str
    kind: str
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    parse: Callable[[str], Any] = str


def _kind(annotation: Any) -> tuple[str, bool]:
    text = str(annotation)
    optional = "None" in text
    base = text.replace("| None", "").strip()
    return {"bool": "bool", "int": "int", "float": "float"}.get(base, "text"), optional


def option_field(f: dataclasses.Field) -> FieldSpec:
    """The spec of an :func:`~napari_cellseg.options.option` field (TrainConfig, PredictConfig)."""
    kind, optional = _kind(f.type)
    if kind == "int" and optional:
        kind = "text"  # e.g. channel_axis: empty means "guess", any integer (-1) is allowed
    convert = f.metadata.get("type") or (int if str(f.type).startswith("int") else str)
    return FieldSpec(
        f.name,
        default_of(f),
        f.metadata["help"],
        kind,
        choices=choices_of(f),
        optional=optional,
        parse=convert,
    )


def param_field(f: dataclasses.Field) -> FieldSpec:
    """The spec of a reconstruction parameter (:func:`~napari_cellseg.families.param`)."""
    kind, optional = _kind(f.type)
    meta = f.metadata
    return FieldSpec(
        f.name,
        f.default,
        meta.get("help", ""),
        kind,
        optional=optional or f.default is None,
        minimum=meta.get("minimum"),
        maximum=meta.get("maximum"),
        step=meta.get("step"),
    )


class AutoSpinBox(Container):
    """An integer box with an "auto" check box; ``value`` is None while "auto" is ticked.

    Parameters
    ----------
    spec
        An integer field whose default may be None.
    """

    def __init__(self, spec: FieldSpec) -> None:
        minimum = int(spec.minimum or 0)
        start = minimum if spec.default is None else spec.default
        self._auto = CheckBox(text="auto", value=spec.default is None, tooltip=spec.help)
        self._number = SpinBox(
            value=start, min=minimum, max=int(spec.maximum or INT_MAX), tooltip=spec.help
        )
        self._number.enabled = spec.default is not None
        super().__init__(
            widgets=[self._auto, self._number],
            layout="horizontal",
            labels=False,
            name=spec.name,
            label=_label(spec.name),
            tooltip=spec.help,
        )
        self.margins = (0, 0, 0, 0)
        self._auto.changed.connect(self._on_auto)

    def _on_auto(self, auto: bool) -> None:
        self._number.enabled = not auto

    @property
    def value(self) -> int | None:
        """The number, or None for "auto"."""
        return None if self._auto.value else int(self._number.value)

    @value.setter
    def value(self, value: int | None) -> None:
        self._auto.value = value is None
        if value is not None:
            self._number.value = value


def with_button(widget: Any, text: str, tooltip: str, clicked: Callable[[], Any]) -> Container:
    """``widget`` with a push button beside it: one row of a form, labelled like ``widget``;
    the widget takes the width the button does not need."""
    button = PushButton(text=text, tooltip=tooltip)
    button.clicked.connect(lambda: clicked())
    policy = QSizePolicy.Policy
    button.native.setSizePolicy(policy.Fixed, policy.Fixed)
    row = Container(widgets=[widget, button], layout="horizontal", labels=False)
    row.margins = (0, 0, 0, 0)
    row.label = widget.label
    return row


def _label(name: str) -> str:
    return name.replace("_", " ")


def _text(value: Any) -> str:
    shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
    return "" if shown is None else str(shown)


def make_editor(spec: FieldSpec) -> Any:
    """The magicgui widget of one field, showing its default, with its help as tooltip."""
    common = {"name": spec.name, "label": _label(spec.name), "tooltip": spec.help}
    if spec.kind == "bool":
        return CheckBox(value=bool(spec.default), **common)
    if spec.choices:
        choices = [(str(c), c) for c in spec.choices]
        if spec.default is None:
            choices.insert(0, (NONE_CHOICE, None))
        return ComboBox(choices=choices, value=spec.default, **common)
    if spec.kind == "int" and spec.optional:
        return AutoSpinBox(spec)
    if spec.kind == "int":
        low, high = int(spec.minimum or 0), int(spec.maximum or INT_MAX)
        return SpinBox(value=spec.default, min=low, max=high, **common)
    if spec.kind == "float":
        step = spec.step or (spec.default / 2 if 0 < spec.default < 0.01 else 0.1)
        low = 0.0 if spec.minimum is None else spec.minimum
        high = FLOAT_MAX if spec.maximum is None else spec.maximum
        return FloatSpinBox(value=spec.default, min=low, max=high, step=step, **common)
    line = LineEdit(value=_text(spec.default), **common)
    if spec.default is None:
        line.native.setPlaceholderText(NONE_CHOICE)
    return line


class Form(Container):
    """A magicgui form of fields: one editor each (:func:`make_editor`), in the given order.

    Parameters
    ----------
    specs
        The fields, e.g. ``[option_field(f) for f in dataclasses.fields(TrainConfig)]``.
    widgets
        Other widgets shown first, aligned with the fields (e.g. the layer to work on).
    """

    def __init__(self, specs: Iterable[FieldSpec], widgets: Sequence[Any] = ()) -> None:
        self._specs = {spec.name: spec for spec in specs}
        editors = [make_editor(spec) for spec in self._specs.values()]
        super().__init__(widgets=[*widgets, *editors])
        self.margins = (0, 0, 0, 0)

    @property
    def names(self) -> list[str]:
        """The fields shown, in order."""
        return list(self._specs)

    def editor(self, name: str) -> Any:
        """The widget of one field."""
        return self[name]

    def set_value(self, name: str, value: Any) -> None:
        """Show a value in one field's editor (text such as ``"64,64"`` for a line edit)."""
        editor = self[name]
        editor.value = _text(value) if isinstance(editor, LineEdit) else value

    def values(self) -> dict[str, Any]:
        """Every field's value; the text of line edits parsed like the command line.

        Raises
        ------
        CellsegError
            For text that does not parse, or an empty one where a value is needed, naming
            the field.
        """
        out = {}
        for name, spec in self._specs.items():
            value = self[name].value
            out[name] = _parse(spec, value.strip()) if isinstance(self[name], LineEdit) else value
        return out


def _parse(spec: FieldSpec, text: str) -> Any:
    if not text:
        if spec.optional:
            return None
        if spec.parse is str:
            return ""
        raise CellsegError(f"option '{spec.name}' needs a value ({spec.help})")
    try:
        return spec.parse(text)
    except (argparse.ArgumentTypeError, ValueError) as err:
        raise CellsegError(f"option '{spec.name}': {err}") from None
