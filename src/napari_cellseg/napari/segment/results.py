"""How the Segment widget's results become layers, without overwriting a user's edits.

A result layer carries ``metadata[RESULT_KEY] = {"image", "model"}`` and the fingerprint of
what the widget last wrote into it (``metadata[WRITTEN_KEY]``): a layer whose data still match
it holds no edits of the user's and may be replaced; otherwise the new result goes to a new
layer. (Layers reach a plugin through proxies, so the layer object cannot be the key.) Labels
are drawn as outlines (:data:`CONTOUR`), so that the image and any ground truth beneath stay
visible; the layer controls' "contour" set to 0 fills them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_cellseg.napari._frames import placement
from napari_cellseg.napari.segment.worker import Job, Outputs

#: Metadata key of the layers this widget writes (value: ``{"image", "model"}``).
RESULT_KEY = "cellseg_segmentation"
#: Metadata key of the fingerprint of what Segment last wrote into a result layer.
WRITTEN_KEY = "cellseg_written"
#: Outline width of new result layers (pixels).
CONTOUR = 1


def digest(data: Any) -> bytes:
    """A fingerprint of a layer's array (shape, dtype and every value)."""
    array = np.ascontiguousarray(data)
    found = hashlib.blake2b(repr((array.shape, array.dtype.str)).encode(), digest_size=16)
    found.update(memoryview(array).cast("B"))
    return found.digest()


def result_layers(viewer: Any, meta: dict[str, str], kind: type) -> list[Any]:
    """The layers of ``kind`` holding results of ``meta`` (image, model and maybe output)."""
    return [
        layer
        for layer in viewer.layers
        if isinstance(layer, kind) and layer.metadata.get(RESULT_KEY) == meta
    ]


def show_labels(viewer: Any, job: Job, name: str, stack: np.ndarray) -> tuple[Any, str | None]:
    """Put labels into the job's result layer, or into a new one when the user edited it.

    Returns
    -------
    layer : napari.layers.Labels
        The layer that holds ``stack``.
    edited : str or None
        The name of the result layer left alone because it holds the user's edits.
    """
    meta = {"image": job.image, "model": job.model}
    results = result_layers(viewer, meta, Labels)
    unchanged = [
        layer for layer in results if layer.metadata.get(WRITTEN_KEY) == digest(layer.data)
    ]
    if unchanged:
        layer, edited = unchanged[0], None
        layer.data = stack
    else:
        source = viewer.layers[job.image] if job.image in viewer.layers else None
        layer = viewer.add_labels(
            stack, name=name, metadata={RESULT_KEY: meta}, opacity=0.9, **placement(source)
        )
        layer.contour = CONTOUR
        edited = results[-1].name if results else None
    layer.metadata[WRITTEN_KEY] = digest(layer.data)
    return layer, edited


def show_outputs(viewer: Any, job: Job, kept: Outputs) -> None:
    """Add (or update) one hidden Image layer per network output: flows as colours, maps."""
    source = viewer.layers[job.image] if job.image in viewer.layers else None
    for output in kept.outputs[0]:
        maps = [displayable(frame[output]) for frame in kept.outputs]
        data = np.stack(maps).reshape(kept.lead_shape + maps[0].shape)
        meta = {"image": job.image, "model": job.model, "output": output}
        layers = result_layers(viewer, meta, Image)
        if layers:
            layers[0].data = data
            continue
        viewer.add_image(
            data,
            name=f"{job.image} {output}",
            metadata={RESULT_KEY: meta},
            rgb=output == "flow",
            colormap="gray" if output != "flow" else None,
            visible=False,
            **placement(source),
        )


def displayable(values: np.ndarray) -> np.ndarray:
    """A flow ``(2, Y, X)`` as RGB colours (direction = hue, strength = value); maps as is."""
    if values.ndim == 2:
        return values
    from skimage.color import hsv2rgb

    angle = np.arctan2(values[0], values[1])
    strength = np.hypot(values[0], values[1])
    top = float(np.percentile(strength, 99)) or 1.0
    hsv = np.stack(
        [(angle + np.pi) / (2 * np.pi), np.ones_like(angle), np.clip(strength / top, 0, 1)], -1
    )
    return (hsv2rgb(hsv) * 255).astype(np.uint8)
