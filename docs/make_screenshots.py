"""Regenerate the screenshots of the docked widgets in docs/ from a real napari viewer.

Opens the demo viewer (:func:`napari_cellseg.napari.demo.make_demo_viewer`: synthetic bacteria,
the QC, Train and Segment widgets docked), then

- ``screenshot_qc.png``: the Annotation QC widget after a run on the sample labels;
- ``screenshot_train.png``: the Train widget after a short training (loss plot, preview);
- ``screenshot_segment.png``: the Segment widget with the trained model's result layer.

A short run from scratch on a CPU does not find cells yet: ``--model`` fine-tunes a model
trained beforehand (e.g. by ``cellseg demo``) so that the preview and the result show cells.

Each PNG is reduced to a palette image so that it stays below 400 KB. Needs a display: run
``xvfb-run -a -s "-screen 0 1400x900x24" python docs/make_screenshots.py`` on a headless machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
MAX_BYTES = 400_000
WINDOW = (1400, 860)


def _wait(app: Any, seconds: float = 0.3, until: Any = None, timeout: float = 60.0) -> None:
    """Process Qt events for ``seconds``, or until ``until()`` is true."""
    end = time.perf_counter() + (timeout if until else seconds)
    while time.perf_counter() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.01)


def _save(viewer: Any, app: Any, path: Path) -> Path:
    """Screenshot the whole window into ``path`` as a small palette PNG."""
    from PIL import Image

    _wait(app, 0.5)
    array = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(array[..., :3]).quantize(colors=128, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        half = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4))
        half.quantize(colors=96).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1000} KB)")
    return path


def main() -> None:
    """Make the three screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the short training")
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for the PNG files")
    parser.add_argument("--model", type=Path, help="model file to fine-tune (default: scratch)")
    args = parser.parse_args()

    from qtpy.QtWidgets import QApplication

    from napari_cellseg.napari.demo import make_demo_viewer

    viewer, docks = make_demo_viewer("bacteria")
    viewer.window.resize(*WINDOW)
    app = QApplication.instance()
    _wait(app, 1.0)

    qc_dock, qc = docks["Annotation QC"]
    qc_dock.raise_()
    qc.set_layers("bacteria_masks", "bacteria")
    qc.run()
    _save(viewer, app, args.out / "screenshot_qc.png")

    train_dock, train = docks["Train"]
    train_dock.raise_()
    options = {"n_epochs": args.epochs, "batch_size": 8, "tyx": "128,128", "device": "cpu"}
    for name, value in options.items():
        train.options.set_value(name, value)
    advanced = {"save_every": 2, "nimg_per_epoch": 16, "nbase": "16,32,64,128"}
    for name, value in advanced.items():
        train.advanced.set_value(name, value)
    if args.model:
        train.set_start_model(args.model.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        train.set_output(Path(tmp) / "bacteria_omni.pt")
        viewer.layers.remove(next(lay for lay in viewer.layers if lay.name.startswith("QC ")))
        viewer.layers["bacteria_masks"].visible = False
        viewer.layers.selection.active = viewer.layers["bacteria"]
        if not train.start(accept_warnings=True):
            raise SystemExit("the Train widget did not start")
        _wait(app, until=lambda: not train.busy, timeout=3600)
        _save(viewer, app, args.out / "screenshot_train.png")

        segment_dock, segment = docks["Segment"]
        segment_dock.raise_()
        viewer.layers.remove(next(lay for lay in viewer.layers if lay.name.startswith("training")))
        segment.set_image("bacteria")
        segment.run()
        _wait(app, until=lambda: not segment.busy, timeout=600)
        _save(viewer, app, args.out / "screenshot_segment.png")
    viewer.close()


if __name__ == "__main__":
    main()
