"""The Train widget's QC gate panel: the findings that stopped (or held) a start, above Start.

Hidden until a start finds problems; it shows the first two findings (all of them in the
tooltip), a button to the Annotation QC widget on the labels concerned and, for warnings only,
"Train anyway".
"""

from __future__ import annotations

import html
from collections.abc import Callable

from qtpy.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from napari_cellseg.napari._dock import wrapped_label

#: Colours of blocking problems and of warnings.
BLOCKING_COLOR, WARNING_COLOR = "#ff6b61", "#ffcc00"


class QCPanel(QWidget):
    """QC findings with "Open Annotation QC" and "Train anyway" buttons.

    Parameters
    ----------
    open_qc
        Called by "Open Annotation QC".
    train_anyway
        Called by "Train anyway".
    """

    def __init__(self, open_qc: Callable[[], object], train_anyway: Callable[[], object]) -> None:
        super().__init__()
        self.label = wrapped_label()
        self.qc_button = QPushButton("Open Annotation QC")
        self.qc_button.clicked.connect(lambda: open_qc())
        self.anyway_button = QPushButton("Train anyway")
        self.anyway_button.clicked.connect(lambda: train_anyway())
        buttons = QHBoxLayout()
        buttons.addWidget(self.qc_button)
        buttons.addWidget(self.anyway_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addLayout(buttons)
        self.setVisible(False)

    def show_findings(self, title: str, messages: list[str], blocking: bool, labels: str) -> None:
        """Show QC findings on the Labels layer ``labels`` (the first two; all in the tooltip)."""
        lines = [html.escape(title), *map(html.escape, messages[:2])]
        if len(messages) > 2:
            lines.append(f"... and {len(messages) - 2} more")
        color = BLOCKING_COLOR if blocking else WARNING_COLOR
        self.label.setText(f"<span style='color:{color}'>{'<br>'.join(lines)}</span>")
        self.label.setToolTip("\n".join(messages[:30]))
        self.qc_button.setText(f"Open Annotation QC on '{labels}'")
        self.anyway_button.setVisible(not blocking)
        self.setVisible(True)
