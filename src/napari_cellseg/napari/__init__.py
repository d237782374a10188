"""napari contributions of napari-cellseg: readers, writer, sample data and dock widgets.

Everything that imports napari, Qt or magicgui lives in this package; the core modules never
import it. Modules here import torch only inside the functions that need it.
"""
