"""Regenerate the screenshots of the docked widgets in docs/ from a real napari viewer.

- ``screenshot_docked.png``: the QC, Train and Segment widgets docked one below the other, as
  the Plugins menu docks them, on the synthetic bacteria: each keeps a usable height and its
  Run/Start button in view;

then the demo viewer (:func:`napari_cellseg.napari.demo.make_demo_viewer`: the same widgets as
tabs) gives

- ``screenshot_qc.png``: the Annotation QC widget after a run on the sample labels with a
  split cell and a fragment planted, the fragment selected;
- ``screenshot_train.png``: the Train widget after a short training (loss plot, preview);
- ``screenshot_preview.png``: a close-up of the training preview, outlines over the image and
  the ground truth;
- ``screenshot_segment.png``: the Segment widget with the trained model's result (outlines).

A short run from scratch on a CPU does not find cells yet: the training fine-tunes a model
(``--model``, by default the built-in ``bacteria_phase``) so that the preview and the result
show cells; ``--model scratch`` trains from random weights.

Each PNG is reduced to a palette image so that it stays below 400 KB. Needs a display: run
``xvfb-run -a -s "-screen 0 1400x900x24" python docs/make_screenshots.py`` on a headless machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DOCS = Path(__file__).resolve().parent
MAX_BYTES = 400_000
WINDOW = (1400, 900)
WIDGETS = ("Annotation QC", "Train", "Segment")


def _wait(app: Any, seconds: float = 0.3, until: Any = None, timeout: float = 60.0) -> None:
    """Process Qt events for ``seconds``, or until ``until()`` is true."""
    end = time.perf_counter() + (timeout if until else seconds)
    while time.perf_counter() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.01)


def _save(viewer: Any, app: Any, path: Path, canvas_only: bool = False) -> Path:
    """Screenshot the whole window (or the canvas) into ``path`` as a small palette PNG
    (notifications closed first: they would hide part of the canvas)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from PIL import Image

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    _wait(app, 0.5)
    array = viewer.screenshot(canvas_only=canvas_only, flash=False)
    image = Image.fromarray(array[..., :3]).quantize(colors=128, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        half = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4))
        half.quantize(colors=96).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1000} KB)")
    return path


def _plant_problems(labels: np.ndarray) -> np.ndarray:
    """A split cell (the second largest takes the largest one's id) and a 3-pixel fragment."""
    out = labels.copy()
    ids, sizes = np.unique(out[out > 0], return_counts=True)
    big = ids[np.argsort(sizes)[::-1]]
    out[out == big[1]] = big[0]
    background = np.argwhere(out == 0)
    y, x = background[len(background) // 2]
    out[y, x : x + 3] = big[2]
    return out


def docked(out: Path) -> None:
    """The three widgets docked one below the other (as the Plugins menu does)."""
    from napari.layers import Layer
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_cellseg.napari import _sample_data

    viewer = napari.Viewer(title="napari-cellseg: three docked widgets")
    viewer.window._qt_window.resize(*WINDOW)
    for data, meta, layer_type in _sample_data.bacteria():
        viewer.add_layer(Layer.create(data, meta, layer_type))
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-cellseg", name)
    _save(viewer, QApplication.instance(), out / "screenshot_docked.png")
    viewer.close()


def main() -> None:
    """Make the five screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the short training")
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for the PNG files")
    parser.add_argument(
        "--model",
        default="bacteria_phase",
        help="model file or built-in name to fine-tune, or 'scratch' (default: %(default)s)",
    )
    args = parser.parse_args()

    from qtpy.QtWidgets import QApplication

    from napari_cellseg.napari.demo import make_demo_viewer

    docked(args.out)
    viewer, docks = make_demo_viewer("bacteria")
    viewer.window._qt_window.resize(*WINDOW)
    app = QApplication.instance()
    _wait(app, 1.0)
    masks = viewer.layers["bacteria_masks"]
    truth = np.array(masks.data)

    qc_dock, qc = docks["Annotation QC"]
    qc_dock.raise_()
    masks.data = _plant_problems(truth)
    qc.set_layers("bacteria_masks", "bacteria")
    qc.run()
    fragment = next(i for i, row in enumerate(qc.rows) if row.problem.check == "fragment")
    qc._table.selectRow(fragment)
    _save(viewer, app, args.out / "screenshot_qc.png")
    masks.data = truth
    viewer.layers.remove(next(lay for lay in viewer.layers if lay.name.startswith("QC ")))
    viewer.reset_view()

    train_dock, train = docks["Train"]
    train_dock.raise_()
    options = {"n_epochs": args.epochs, "batch_size": 8, "tyx": "128,128", "device": "cpu"}
    for name, value in options.items():
        train.options.set_value(name, value)
    advanced = {"save_every": 2, "nimg_per_epoch": 16, "warmup_epochs": 1}
    if args.model == "scratch":
        advanced["nbase"] = "16,32,64,128"
    else:
        train.set_start_model(args.model)
    for name, value in advanced.items():
        train.advanced.set_value(name, value)
    with tempfile.TemporaryDirectory() as tmp:
        train.set_output(Path(tmp) / "bacteria_omni.pt")
        masks.opacity = 0.45
        viewer.layers.selection.active = viewer.layers["bacteria"]
        if not train.start(accept_warnings=True):
            raise SystemExit("the Train widget did not start")
        _wait(app, until=lambda: not train.busy, timeout=3600)
        _save(viewer, app, args.out / "screenshot_train.png")
        camera = viewer.camera
        camera.center, camera.zoom = (0.0, 150.0, 120.0), camera.zoom * 2.5
        _save(viewer, app, args.out / "screenshot_preview.png", canvas_only=True)

        segment_dock, segment = docks["Segment"]
        segment_dock.raise_()
        viewer.reset_view()
        viewer.layers.remove(next(lay for lay in viewer.layers if lay.name.startswith("training")))
        segment.set_image("bacteria")
        segment.run()
        _wait(app, until=lambda: not segment.busy, timeout=600)
        _save(viewer, app, args.out / "screenshot_segment.png")
    viewer.close()


if __name__ == "__main__":
    main()
