"""The Train widget's pairs table: each Labels layer, the Image layer it annotates, its role.

A Qt table (magicgui has no table of editable rows): a check box (use it), the labels' name,
a combo box of Image layers and a combo box of roles per row. A new row is ticked only when
its image is of the same kind (:class:`~napari_cellseg.napari._appearance.ImageKind`: frame
shape, data type, channels, fluorescence or not) as the reference image, so that bacteria and
nuclei open side by side are not mixed in one training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QHeaderView, QTableWidget, QTableWidgetItem

#: Label-layer name endings that point at the image layer they annotate (``X_masks`` -> ``X``).
LABEL_SUFFIXES = ("_masks", " [labels]", "_labels", "_mask")
ROLES = ("train", "validation")


@dataclass
class Pair:
    """One row of the pairs table: a Labels layer, its Image layer and its role."""

    labels: str
    image: str | None
    role: str = "train"
    use: bool = True


def pair_image(labels_name: str, image_names: Iterable[str]) -> str | None:
    """The Image layer a Labels layer annotates, by name: ``X_masks``/``X [labels]`` -> ``X``.

    Parameters
    ----------
    labels_name
        Name of a Labels layer.
    image_names
        Names of the Image layers.

    Returns
    -------
    str or None
        The matching image name, or None.
    """
    names = set(image_names)
    for suffix in LABEL_SUFFIXES:
        if labels_name.endswith(suffix) and labels_name[: -len(suffix)] in names:
            return labels_name[: -len(suffix)]
    return None


def updated_pairs(
    current: list[Pair],
    labels: list[str],
    images: list[str],
    kind: Callable[[str], Any] | None = None,
    reference: str | None = None,
) -> list[Pair]:
    """One row per Labels layer: rows keep the user's choices, new rows are auto-paired.

    A row whose image is gone is paired again.

    Parameters
    ----------
    current
        The rows shown now.
    labels, images
        Names of the Labels and Image layers.
    kind
        What an image is (by name; e.g. :func:`~napari_cellseg.napari._appearance.image_kind`
        of the layer). None: every new pair is ticked.
    reference
        The image new pairs must be of the same kind as to be ticked (e.g. the active
        layer's); None: the image of the first new pair.

    Returns
    -------
    list of Pair
        The rows, in ``labels`` order.
    """
    old = {pair.labels: pair for pair in current}
    rows = []
    for name in labels:
        pair = old.get(name)
        if pair is None or (pair.image is not None and pair.image not in images):
            image = pair_image(name, images)
            reference = reference or image
            ticked = image is not None and (kind is None or kind(image) == kind(reference))
            pair = Pair(name, image, "train", ticked)
        rows.append(pair)
    return rows


class PairsTable(QTableWidget):
    """The pairs table; at most five rows tall, at least two.

    Attributes
    ----------
    changed
        Emitted when the rows change (shown anew, ticked, another image or role chosen).
    """

    changed = Signal()

    def __init__(self) -> None:
        super().__init__(0, 4)
        self.images: list[str] = []
        self.setHorizontalHeaderLabels(["", "Labels", "Image", "Role"])
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        for column, mode in enumerate(("ResizeToContents", "Stretch", "Stretch")):
            header.setSectionResizeMode(column, getattr(QHeaderView.ResizeMode, mode))
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip(
            "Each ticked Labels layer is trained on with its Image layer (paired by name: "
            "X_masks or 'X [labels]' -> X). Stacks: every frame is a sample. New pairs are "
            "ticked when their image is like the selected layer's (frame size, data type, "
            "channels, fluorescence or not)."
        )

    def pairs(self) -> list[Pair]:
        """The rows."""
        out = []
        for row in range(self.rowCount()):
            image = self.cellWidget(row, 2).currentText()
            out.append(
                Pair(
                    labels=self.item(row, 1).text(),
                    image=image or None,
                    role=self.cellWidget(row, 3).currentText(),
                    use=self.cellWidget(row, 0).isChecked(),
                )
            )
        return out

    def set_pairs(self, pairs: list[Pair], images: list[str]) -> None:
        """Show ``pairs``, each with a choice among ``images``."""
        self.images = list(images)
        self.setRowCount(len(pairs))
        for row, pair in enumerate(pairs):
            use = QCheckBox()
            use.setChecked(pair.use and pair.image is not None)
            item = QTableWidgetItem(pair.labels)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            image = QComboBox()
            image.addItems(["", *images])
            image.setCurrentText(pair.image or "")
            image.currentTextChanged.connect(lambda text, box=use: box.setChecked(bool(text)))
            image.currentTextChanged.connect(self.changed.emit)
            use.toggled.connect(self.changed.emit)
            role = QComboBox()
            role.addItems(ROLES)
            role.setCurrentText(pair.role)
            role.currentTextChanged.connect(self.changed.emit)
            self.setCellWidget(row, 0, use)
            self.setItem(row, 1, item)
            self.setCellWidget(row, 2, image)
            self.setCellWidget(row, 3, role)
        rows = min(max(self.rowCount(), 2), 5)
        height = self.horizontalHeader().sizeHint().height() + 2 * self.frameWidth()
        self.setFixedHeight(height + rows * self.verticalHeader().defaultSectionSize())
        self.changed.emit()
