"""Run by the Omnipose 1.1.4 interpreter (bench/train_throughput.py starts it).

argv: JSON list of [image, mask] paths, number of epochs, output folder.
Prints ``OMNIPOSE_TRAIN seconds=<s> crops=<n>``.
"""

import json
import sys
import time

import tifffile
from cellpose_omni import models

pairs = json.loads(sys.argv[1])
n_epochs = int(sys.argv[2])
out = sys.argv[3]
images = [tifffile.imread(p[0]) for p in pairs]
labels = [tifffile.imread(p[1]) for p in pairs]
model = models.CellposeModel(
    gpu=False, pretrained_model=False, omni=True, nchan=1, nclasses=2, dim=2, diam_mean=0
)
start = time.perf_counter()
model.train(
    images,
    labels,
    train_links=[None] * len(labels),
    channels=None,
    channel_axis=None,
    save_path=out,
    save_every=10_000,
    learning_rate=0.1,
    n_epochs=n_epochs,
    SGD=False,
    batch_size=8,
    tyx=(224, 224),
    rescale=False,
    min_train_masks=1,
)
seconds = time.perf_counter() - start
print(f"OMNIPOSE_TRAIN seconds={seconds:.3f} crops={len(images) * n_epochs}", flush=True)
