"""What the export tests share: tiny untrained models of each family and the images to run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellseg import synth
from napari_cellseg.models import ModelSpec, build_model
from napari_cellseg.models.checkpoint import save_checkpoint
from napari_cellseg.preprocess import NORMALIZATION

#: Three levels: the network's divisor is 4.
TINY = (8, 16, 32)


def tiny_model(
    path: Path, arch: str, *, nchan: int = 1, seed: int = 0, bias: float = 0.4, **meta
) -> Path:
    """An untrained model file of ``arch`` with random weights and batch-norm statistics.

    The output convolutions (the only ones with a bias) get ``bias``, so that the outputs of
    an untrained network are not all negative.
    """
    import torch

    torch.manual_seed(seed)
    spec = ModelSpec(arch=arch, nchan=nchan, nbase=TINY)
    net = build_model(spec)
    with torch.no_grad():
        for m in net.modules():  # eval-mode batch norm that is not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.fill_(bias)
    return save_checkpoint(path, net, spec, {"normalization": NORMALIZATION, **meta})


def synthetic_image(shape: tuple[int, int] = (96, 136)) -> np.ndarray:
    """Raw synthetic nuclei (camera counts), float32 ``(Y, X)``."""
    return synth.nuclei(shape, seed=3)[0]


def real_image_path(shared_data: Path) -> Path:
    """The first BBBC039 validation image (``shared_data`` is the conftest fixture); skips the
    test when they are absent."""
    folder = shared_data / "bbbc039" / "val"
    images = sorted(p for p in folder.glob("*.tif") if not p.stem.endswith("_masks"))
    if not images:
        pytest.skip(f"real images not found in {folder}")
    return images[0]


def real_image(shared_data: Path, crop: tuple[int, int] | None = (200, 264)) -> np.ndarray:
    """A BBBC039 validation image (raw uint16 counts), cropped to ``crop`` from its corner."""
    from napari_cellseg.io.images import read_image

    image = read_image(real_image_path(shared_data))
    return image if crop is None else image[: crop[0], : crop[1]]
