#!/usr/bin/env bash
# Sets up DeLTA 2.0.7 (delta2 on PyPI; the reference of our tracking U-Net) in its own virtual
# environment, on the CPU. Usage: bash bench/peers/setup_delta.sh [VENV_DIR]   (default
# /tmp/peers/delta). Then: VENV_DIR/bin/python bench/peers/delta_track.py train|predict ...
#
# What it takes (checked with Python 3.11, pip 26.3):
#  - delta2 requires `tensorflow>=2.16`, i.e. the distribution named "tensorflow" (the full
#    wheel). tensorflow-cpu provides the same `tensorflow` module without any CUDA library, so
#    it is installed and delta2 with --no-deps, then delta2's other requirements by hand
#    (`pip check` then reports "delta2 requires tensorflow / opencv-python, which is not
#    installed": expected);
#  - scikit-image 0.19.3: DeLTA's zoom augmentation calls rescale(..., multichannel=False),
#    which scikit-image 0.20 removed (TypeError: rescale() got an unexpected keyword argument
#    'multichannel'); 0.19.3 needs numpy < 2, hence tensorflow-cpu 2.17.1 (2.18+ pulls
#    ml-dtypes 0.5+, which needs numpy >= 2) and opencv-python-headless < 4.11;
#  - elasticdeform (optional for DeLTA, a warning without it) is built against numpy 1 and fails
#    to import under numpy 2 ("numpy.core.multiarray failed to import") - fine with numpy 1.26.
# Known defects of delta2 2.0.7 (see bench/peers/delta_track.py): predictCompilefromseg_track
# refers to an undefined name (`prototype`); Keras 3 needs weight files named *.weights.h5.
set -euo pipefail
venv=${1:-${DELTA_VENV:-/tmp/peers/delta}}
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "tensorflow-cpu==2.17.1" "numpy<2" "scikit-image==0.19.3" \
    "opencv-python-headless<4.11" "tifffile>=2020" "ffmpeg-python>=0.2" "requests>=2.32" \
    elasticdeform pillow
"$venv/bin/pip" install -q --no-deps "delta2==2.0.7"
"$venv/bin/python" -c "import tensorflow as tf, delta.model, delta.data; \
print('delta ready:', delta.__file__, 'tensorflow', tf.__version__)"
