"""The Train widget's "Find learning rate" button: the range test in a worker fills the lr field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from test_train_widget import TIMEOUT_MS, train  # noqa: F401 - the fixture

from napari_cellseg.napari.train import lr_finder


def test_find_learning_rate_runs_the_range_test_and_sets_its_suggestion(
    qtbot,
    viewer,
    train,  # noqa: F811 - the fixture imported above
    tmp_path,
    monkeypatch,
) -> None:
    monkeypatch.setattr(lr_finder, "STEPS", 12)
    finder = train.lr_finder
    before = train.options.editor("learning_rate").value
    qtbot.mouseClick(finder.button, Qt.MouseButton.LeftButton)
    assert train.busy
    qtbot.waitUntil(lambda: not train.busy, timeout=TIMEOUT_MS)

    result = finder.result
    assert result is not None and len(result.lrs) == len(finder.points) > 5
    best = int(np.argmin(result.smoothed))
    assert result.suggested_lr == max(result.lrs[best] / 10, 1e-6)
    value = train.options.editor("learning_rate").value
    assert value == float(f"{result.suggested_lr:.3g}") and value != before
    assert train.config().learning_rate == value  # the next run trains at the found rate
    assert not finder.canvas.isHidden()  # the curve is shown
    assert not Path(train.config().model).exists()  # the test saved no model
    assert not list(tmp_path.glob("*.pt"))
