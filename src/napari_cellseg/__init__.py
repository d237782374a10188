"""napari-cellseg: cell-segmentation training and inference for napari and the command line.

Importing the package imports neither torch nor Qt.
"""

__version__ = "0.1.0"
