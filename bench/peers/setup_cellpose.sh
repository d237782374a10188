#!/usr/bin/env bash
# Sets up Cellpose 3 (the second reference of bench/accuracy.py) in its own virtual environment.
# Usage: bash bench/peers/setup_cellpose.sh [VENV_DIR]      (default /tmp/cellpose-venv)
# Then:  VENV_DIR/bin/python -m cellpose --train --dir ... --pretrained_model None ...
#
# Cellpose 3 (not 4): version 4 only trains Cellpose-SAM (a 300M-parameter ViT, far too slow on a
# CPU), while 3.x still trains the residual U-Net (CPnet) from scratch. Training from scratch and
# predicting with one's own model file need no download; the built-in models (cyto3, nuclei...) are
# fetched from the web on first use and are not used by the benchmarks.
set -euo pipefail
venv=${1:-${CELLPOSE_VENV:-/tmp/cellpose-venv}}
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "cellpose>=3.1,<4"
"$venv/bin/python" -c "import cellpose, cellpose.models; print('cellpose ready:', cellpose.version)"
