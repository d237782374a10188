"""A picture of the docked Annotation QC widget on sample data with a few planted problems.

It checks that the window renders (not blank). With ``CELLSEG_DOCS=1`` it also refreshes
``docs/qc_widget.png``, the screenshot used in the documentation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from napari.layers import Labels

from napari_cellseg.napari import _sample_data

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _plant_problems(labels: np.ndarray) -> np.ndarray:
    """A split label and a fragment added to the synthetic labels (which show gaps already)."""
    out = labels.copy()
    ids, sizes = np.unique(out[out > 0], return_counts=True)
    big = ids[np.argsort(sizes)[::-1]]
    out[out == big[1]] = big[0]  # split: the second largest cell takes the largest one's id
    background = np.argwhere(out == 0)
    y, x = background[len(background) // 2]
    out[y, x : x + 3] = big[2]  # fragment: a 3-pixel speck far from its cell
    return out


def test_qc_widget_screenshot(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1300, 820)
    (image, image_meta, _), (labels, labels_meta, _) = _sample_data.bacteria()
    viewer.add_image(image, **image_meta)
    viewer.add_labels(_plant_problems(labels), **labels_meta)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotation QC")
    widget.run()
    fragment = next(i for i, row in enumerate(widget.rows) if row.problem.check == "fragment")
    widget._table.selectRow(fragment)
    qtbot.wait(300)  # let the dock widget lay out before the picture

    path = tmp_path / "qc_widget.png"
    picture = viewer.screenshot(str(path), canvas_only=False)

    assert isinstance(viewer.layers["bacteria_masks"], Labels)
    assert picture.shape[0] > 600 and picture.shape[1] > 1000
    assert picture[..., :3].std() > 10  # not blank
    if os.environ.get("CELLSEG_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        viewer.screenshot(str(DOCS / "qc_widget.png"), canvas_only=False)
