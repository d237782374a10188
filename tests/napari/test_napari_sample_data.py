"""Sample data: synthetic bacteria and nuclei, each an image with its labels."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_cellseg.napari import _sample_data


@pytest.mark.parametrize("key", ["bacteria", "nuclei"])
def test_sample_is_an_image_with_integer_labels_of_the_same_shape(key: str) -> None:
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind) = getattr(
        _sample_data, key
    )()

    assert (image_kind, labels_kind) == ("image", "labels")
    assert (image_meta["name"], labels_meta["name"]) == (key, f"{key}_masks")
    assert image.shape == labels.shape and image.ndim == 2
    assert np.issubdtype(labels.dtype, np.integer) and labels.max() > 1


def test_sample_opens_from_the_manifest_as_image_and_labels_layers(viewer) -> None:
    layers = viewer.open_sample("napari-cellseg", "nuclei")

    assert [type(layer) for layer in layers] == [Image, Labels]
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei_masks"]
