"""The Track dock widget: :mod:`.result` (a tracking result as layers, corrections that undo
restores with their table) and :mod:`.widget`."""

from napari_cellseg.napari.track.widget import TrackWidget

__all__ = ["TrackWidget"]
