"""The Train dock widget: :mod:`.form` (options from TrainConfig), :mod:`.pairs` (the pairs
table), :mod:`.data` (QC gate and layer copies), :mod:`.worker` (the training loop and its
previews in a thread worker), :mod:`.plot` (the loss plot) and :mod:`.widget`."""

from napari_cellseg.napari.train.pairs import Pair, pair_image
from napari_cellseg.napari.train.preview import PREVIEW_KEY
from napari_cellseg.napari.train.widget import TrainWidget

__all__ = ["PREVIEW_KEY", "Pair", "TrainWidget", "pair_image"]
