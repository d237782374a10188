"""DeLTA 2.0's tracking U-Net, trained and run through its own functions (the peer of our tracker).

Runs inside DeLTA's virtual environment (``bench/peers/setup_delta.sh``, default
/tmp/peers/delta), never with this project's interpreter:

    VENV/bin/python bench/peers/delta_track.py train --dir SET --model M.weights.h5 --seconds 600
    VENV/bin/python bench/peers/delta_track.py predict --model M.weights.h5 --dir WINDOWS --out OUT

``train``: ``SET`` holds DeLTA's six folders (``previmg/ seg/ img/ segall/ mot_dau/ wei/``, one
file per sample, same names); training is DeLTA's ``trainGenerator_track`` (crop windows around
the seed, ``shift_cropbox=5``, the augmentation of DeLTA's ``train_track.py``) into
``unet_track`` (Adam 1e-5, pixel-wise weighted cross-entropy), stopped after ``--seconds`` (the
epoch in progress ends at the next step). ``predict``: ``WINDOWS`` holds ``img/ seg/ previmg/
segall/``; each sample is cropped around its seed as in training, predicted, and the output
(the probability that a pixel belongs to the seed's cell(s) at t) is pasted back at the
sample's size and written as ``OUT/<name>.png`` (uint8, 255 = 1).

Both print one JSON line (``DELTA {...}``) with what was done and how long it took.

DeLTA 2.0.7 notes: its training functions are ``delta.data.trainGenerator_track`` and
``delta.model.unet_track`` (camelCase in 2.0.7); ``delta.data.predictCompilefromseg_track``
cannot be used (it refers to an undefined ``prototype`` and indexes past its own list of file
name numbers), so prediction windows are compiled here with DeLTA's ``readreshape``,
``gettrackingboxes`` and ``cropbox``, as the training generator does. Keras 3 loads weights only
from ``*.weights.h5`` files, so the model is saved with ``save_weights`` under that name.
Environment (setup_delta.sh): tensorflow-cpu 2.17.1, keras 3.15.1, numpy 1.26.4,
scikit-image 0.19.3 (DeLTA's augmentation passes ``multichannel=``, removed in 0.20). On 2 CPU
threads a training step (batch 2, 256 x 256) takes about 2 s and a prediction about 0.4 s per
seed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The augmentation of DeLTA's tracking training script (2D presets).
AUGMENT = {
    "rotation": 1,
    "zoom": 0.15,
    "horizontal_flip": True,
    "vertical_flip": True,
    "illumination_voodoo": True,
    "histogram_voodoo": True,
}
FOLDERS = ("img", "seg", "previmg", "segall", "mot_dau", "wei")


def _threads(n: int) -> None:
    import tensorflow as tf

    if n > 0:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def train(args: argparse.Namespace) -> dict:
    """Train ``unet_track`` on a six-folder set until ``args.seconds`` have passed."""
    import keras
    from delta import config as cfg
    from delta import data, model

    start = time.perf_counter()
    root = Path(args.dir)
    missing = [f for f in FOLDERS[:-1] if not (root / f).is_dir()]
    if missing:
        sys.exit(f"{root}: missing {', '.join(missing)} (a DeLTA tracking set has {FOLDERS})")
    target = tuple(args.target)
    cfg.target_size_track = target  # gettrackingboxes() reads it when cropping windows
    generator = data.trainGenerator_track(
        args.batch,
        str(root / "img"),
        str(root / "seg"),
        str(root / "previmg"),
        str(root / "segall"),
        str(root / "mot_dau"),
        str(root / "wei") if (root / "wei").is_dir() else None,
        augment_params=AUGMENT,
        crop_windows=True,
        target_size=target,
        shift_cropbox=5,
        seed=args.seed,
    )
    net = model.unet_track(input_size=(*target, 4))
    budget_end = start + args.seconds
    steps_done = [0]

    class Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):  # noqa: ANN001 - Keras hook
            steps_done[0] += 1
            if time.perf_counter() >= budget_end:
                self.model.stop_training = True

    setup_s = time.perf_counter() - start
    history = net.fit(
        generator,
        steps_per_epoch=args.steps,
        epochs=args.max_epochs,
        callbacks=[Budget()],
        verbose=2 if args.verbose else 0,
    )
    Path(args.model).parent.mkdir(parents=True, exist_ok=True)
    net.save_weights(args.model)
    losses = history.history.get("loss", [])
    return {
        "model": str(args.model),
        "seconds": time.perf_counter() - start,
        "setup_s": setup_s,
        "steps": steps_done[0],
        "epochs": len(losses),
        "samples_seen": steps_done[0] * args.batch,
        "last_loss": losses[-1] if losses else None,
    }


def predict(args: argparse.Namespace) -> dict:
    """Predict the tracking output of every sample of a folder of windows."""
    import numpy as np
    from delta import data, model
    from delta import utilities as utils
    from PIL import Image

    start = time.perf_counter()
    root, out = Path(args.dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = tuple(args.target)
    names = sorted(p.name for p in (root / "img").iterdir() if p.suffix in (".png", ".tif"))
    net = model.unet_track(pretrained_weights=args.model, input_size=(*target, 4))
    load_s = time.perf_counter() - start
    predict_s = 0.0
    for first in range(0, len(names), args.chunk):
        chunk = names[first : first + args.chunk]
        inputs = np.zeros((len(chunk), *target, 4), np.float32)
        placed = []
        for i, name in enumerate(chunk):

            def read(folder: str, mask: bool, name: str = name) -> np.ndarray:
                return data.readreshape(
                    str(root / folder / name),
                    target_size=target,
                    binarize=mask,
                    order=0 if mask else 1,
                    rangescale=not mask,
                    crop=True,
                )

            img, seg, previmg, segall = (
                read("img", False),
                read("seg", True),
                read("previmg", False),
                read("segall", True),
            )
            cb, fb = utils.gettrackingboxes(seg, seg.shape, target)
            window = (slice(fb["ytl"], fb["ybr"]), slice(fb["xtl"], fb["xbr"]))
            for channel, array in enumerate((img, seg, previmg, segall)):
                inputs[(i, *window, channel)] = utils.cropbox(array, cb)
            placed.append((name, seg.shape, cb, window))
        tic = time.perf_counter()
        outputs = net.predict(inputs, batch_size=args.batch, verbose=0)[..., 0]
        predict_s += time.perf_counter() - tic
        for (name, shape, cb, window), output in zip(placed, outputs):
            full = np.zeros(shape, np.float32)
            full[cb["ytl"] : cb["ybr"], cb["xtl"] : cb["xbr"]] = output[window]
            stem = Path(name).stem
            Image.fromarray(np.round(full * 255).astype(np.uint8)).save(out / f"{stem}.png")
    return {
        "out": str(out),
        "samples": len(names),
        "seconds": time.perf_counter() - start,
        "load_s": load_s,
        "predict_s": predict_s,
    }


def main() -> None:
    """Parse the command line and run ``train`` or ``predict``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "predict"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True, help="six folders (train) or four (predict)")
        p.add_argument("--model", required=True, help="weights file, *.weights.h5")
        p.add_argument("--target", type=int, nargs=2, default=(256, 256), help="window (Y X)")
        p.add_argument("--batch", type=int, default=2, help="DeLTA 2D trains with 2")
        p.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all)")
    t = sub.choices["train"]
    t.add_argument("--seconds", type=float, required=True, help="training time budget")
    t.add_argument("--steps", type=int, default=300, help="steps per epoch (DeLTA: 300)")
    t.add_argument("--max-epochs", type=int, default=500, help="DeLTA: 500 (early stopping)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--verbose", action="store_true")
    p = sub.choices["predict"]
    p.add_argument("--out", required=True, help="folder for the output masks")
    p.add_argument("--chunk", type=int, default=64, help="samples compiled per predict call")
    args = parser.parse_args()
    if not args.model.endswith(".weights.h5"):
        sys.exit(f"--model {args.model}: Keras 3 needs a name ending in .weights.h5")
    _threads(args.threads)
    report = train(args) if args.command == "train" else predict(args)
    print("DELTA " + json.dumps({"command": args.command, **report}), flush=True)


if __name__ == "__main__":
    main()
