"""The Segment widget shows the card of the chosen model in a collapsed, read-only box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.napari.segment import SegmentWidget


@pytest.fixture
def carded_model(tmp_path: Path) -> Path:
    """A small model file whose card says: 2 images with 3 cells, made by a given command."""
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.export.card import card_metrics, training_card
    from napari_cellseg.models import build_model
    from napari_cellseg.models.checkpoint import save_checkpoint
    from napari_cellseg.train import checkpoint_meta, model_spec
    from napari_cellseg.train.samples import TrainItem

    labels = [np.zeros((16, 16), np.int32) for _ in range(2)]
    labels[0][2:5, 2:5], labels[1][2:5, 2:5], labels[1][9:12, 9:12] = 1, 1, 2
    items = [
        TrainItem(f"cells {i}", np.zeros((1, 16, 16), np.float32), lab)
        for i, lab in enumerate(labels)
    ]
    config = TrainConfig(nbase=(8, 16), dir=str(tmp_path / "train"))
    card = training_card(items, None, config, "cpu", command="cellseg train --dir train")
    card["metrics"] = card_metrics(4, 0.25, None)
    spec = model_spec(config)
    meta = {**checkpoint_meta(config), "card": card, "description": "tiny test model"}
    return save_checkpoint(tmp_path / "carded.pt", build_model(spec), spec, meta, epoch=4)


def test_the_card_of_the_chosen_model_is_shown_on_request(viewer, carded_model):  # noqa: ANN001
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.set_model("nuclei")
    assert widget.card.startswith("nuclei: fluorescent nuclei")
    assert "../shared/data/bbbc039/train (x3)" in widget.card
    assert widget._card_box.toolTip() == widget.card
    assert widget._card_text.isHidden()  # collapsed until asked for
    widget._card_box.setChecked(True)
    assert not widget._card_text.isHidden()
    assert widget._card_text.isReadOnly()

    widget.add_model_file(carded_model)
    assert widget.card.startswith("carded: tiny test model")
    assert f"{(carded_model.parent / 'train').resolve()}; 2 images, 3 cells" in widget.card
    assert "command          cellseg train --dir train" in widget.card
    assert "4 epochs, final train loss 0.25, no validation data" in widget.card


def test_a_model_without_a_yaml_says_so(viewer, carded_model):  # noqa: ANN001
    carded_model.with_suffix(".yaml").unlink()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.add_model_file(carded_model)
    assert widget.card == "carded.pt: no model description beside it"
