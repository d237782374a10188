"""The Segment dock widget: :mod:`.form` (options and reconstruction parameters), :mod:`.worker`
(the prediction engine in a thread worker), :mod:`.results` (result layers) and :mod:`.widget`."""

from napari_cellseg.napari.segment.results import RESULT_KEY
from napari_cellseg.napari.segment.widget import SegmentWidget

__all__ = ["RESULT_KEY", "SegmentWidget"]
