"""The three dock widgets at the size napari gives them: tabbed (the demo) or stacked, in a
1400 x 900 window, every button in view and nothing clipped sideways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from qtpy.QtCore import QPoint, QRect, Qt
from qtpy.QtGui import QRegion
from qtpy.QtWidgets import QAbstractScrollArea, QScrollArea, QWidget

from napari_cellseg.napari._dock import MIN_SCROLL_HEIGHT
from napari_cellseg.napari.demo import WIDGETS, make_demo_viewer

WINDOW = (1400, 900)


def _rect_in(widget: QWidget, other: QWidget) -> QRect:
    return QRect(widget.mapTo(other, QPoint(0, 0)), widget.size())


def shown_whole(widget: QWidget) -> bool:
    """Whether no part of ``widget`` is hidden (clipped by a parent, or under another tab)."""
    hidden = QRegion(widget.rect()).subtracted(widget.visibleRegion())
    return widget.isVisible() and hidden.isEmpty()


def in_view(widget: QWidget, dock: QWidget) -> bool:
    """Whether ``widget`` is shown whole: visible, inside the dock and inside the visible part
    of the scroll area it is in (if any)."""
    if not shown_whole(widget) or not dock.rect().contains(_rect_in(widget, dock)):
        return False
    parent = widget.parentWidget()
    while parent is not None and parent is not dock:
        if isinstance(parent, QScrollArea):
            viewport = parent.viewport()
            return viewport.rect().contains(_rect_in(widget, viewport))
        parent = parent.parentWidget()
    return True


def clipped_sideways(widget: QWidget) -> list[str]:
    """The scroll areas and tables in ``widget`` whose content is wider than they are."""
    return [
        type(area).__name__
        for area in widget.findChildren(QAbstractScrollArea)
        if area.isVisible() and area.horizontalScrollBar().maximum() > 0
    ]


def run_buttons(docks: dict[str, tuple[Any, Any]]) -> dict[str, list[QWidget]]:
    return {
        "Annotation QC": [docks["Annotation QC"][1]._run_button],
        "Train": [docks["Train"][1]._run_button, docks["Train"][1]._stop_button],
        "Segment": [docks["Segment"][1]._run_button, docks["Segment"][1]._stop_button],
    }


@pytest.fixture
def demo(qtbot, own_viewer) -> Iterator[tuple[Any, dict[str, tuple[Any, Any]]]]:  # noqa: ANN001
    """The demo viewer (the three widgets tabbed) shown at 1400 x 900."""
    viewer, docks = make_demo_viewer("bacteria")
    viewer.window._qt_window.resize(*WINDOW)
    qtbot.wait(300)
    yield viewer, docks
    viewer.close()


def test_each_tab_of_the_demo_shows_its_buttons_whole_without_sideways_scrolling(
    qtbot, demo
) -> None:
    viewer, docks = demo
    buttons = run_buttons(docks)
    for name in WIDGETS:
        dock, widget = docks[name]
        dock.raise_()
        qtbot.waitUntil(widget.isVisible, timeout=2000)
        qtbot.wait(100)

        assert widget.height() > 600, name  # the whole height of the dock area
        for button in buttons[name]:
            assert in_view(button, widget), (name, button.text())
        assert clipped_sideways(widget) == [], name
        body = widget.body
        assert body.width() >= body.minimumSizeHint().width(), name
        others = [docks[n][1] for n in WIDGETS if n != name]
        assert all(other.visibleRegion().isEmpty() for other in others)  # tabbed, not stacked


def test_stacked_widgets_each_keep_a_usable_height_and_their_run_buttons(qtbot, own_viewer) -> None:
    import napari

    viewer = napari.Viewer(show=True)
    try:
        viewer.window._qt_window.resize(*WINDOW)
        docks = {
            name: viewer.window.add_plugin_dock_widget("napari-cellseg", name) for name in WIDGETS
        }
        qtbot.wait(300)
        buttons = run_buttons(docks)
        for name in WIDGETS:
            _, widget = docks[name]
            assert widget.isVisible(), name
            assert widget.height() >= MIN_SCROLL_HEIGHT, name  # no strip
            assert widget._scroll.height() >= min(
                MIN_SCROLL_HEIGHT, widget.body.minimumSizeHint().height()
            ), name
            assert clipped_sideways(widget) == [], name
        for name in ("Train", "Segment"):  # below the scrolled controls, always in view
            for button in buttons[name]:
                assert in_view(button, docks[name][1]), (name, button.text())
    finally:
        viewer.close()


def test_long_qc_messages_wrap_in_their_column_and_show_whole_in_the_tooltip(qtbot, demo) -> None:
    _, docks = demo
    dock, qc = docks["Annotation QC"]
    dock.raise_()
    qc.border = True
    qc.run()
    qtbot.wait(200)

    table = qc._table
    column = table.columnCount() - 1
    assert table.columnWidth(column) < 300  # narrower than the longest messages
    metrics = table.fontMetrics()
    for row, found in enumerate(qc.rows):
        item = table.item(row, column)
        assert item.text() == item.toolTip() == found.problem.message
        needed = metrics.boundingRect(
            QRect(0, 0, table.columnWidth(column) - 8, 10_000),
            int(Qt.TextFlag.TextWordWrap),
            found.problem.message,
        )
        assert table.rowHeight(row) >= needed.height(), found.problem.message
    assert clipped_sideways(qc) == []


def test_a_qc_widget_docked_alone_keeps_its_message_column_readable(
    qtbot, make_napari_viewer
) -> None:
    from napari_cellseg.napari import _sample_data
    from napari_cellseg.napari.qc_widget import MESSAGE_MIN_WIDTH

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1300, 820)
    (image, image_meta, _), (labels, labels_meta, _) = _sample_data.bacteria()
    viewer.add_image(image, **image_meta)
    labels = labels.copy()
    labels[labels == 6] = 5  # a split label: a long message
    viewer.add_labels(labels, **labels_meta)
    _, qc = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotation QC")
    qc.border = True
    qc.run()
    qtbot.wait(300)

    table = qc._table
    assert "split_label" in {row.problem.check for row in qc.rows}
    assert table.columnWidth(table.columnCount() - 1) >= MESSAGE_MIN_WIDTH
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert clipped_sideways(qc) == []
