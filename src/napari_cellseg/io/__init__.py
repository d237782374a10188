"""Reading and writing images, masks and links files; dataset discovery per convention.

Each public name has one home, imported from there:

- :mod:`.images`: reading and writing images and label masks, and the channel layout;
- :mod:`.links`: links files (label ids that are pieces of one object);
- :mod:`.datasets`: dataset discovery per convention and loading what it found;
- :mod:`.outputs`: atomic writes and the refusals to write over inputs or outputs.

Pure numpy/tifffile/PIL (scipy only to label binary DeLTA masks): importing this package
imports neither torch nor napari nor Qt.
"""

from napari_cellseg.io import datasets, images, links, outputs

__all__ = ["datasets", "images", "links", "outputs"]
