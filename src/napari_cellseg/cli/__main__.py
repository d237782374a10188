import sys

from napari_cellseg.cli import main

sys.exit(main())
