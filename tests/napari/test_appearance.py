"""Telling fluorescence from transmitted-light images by their intensity distribution."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg import synth
from napari_cellseg.napari._appearance import (
    FLUORESCENCE,
    TRANSMITTED,
    appearance,
    median_position,
)


def _spots(shape: tuple[int, int] = (200, 200), bright: bool = True) -> np.ndarray:
    """Round cells on a flat background with noise: bright on dark, or dark on bright."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cells = np.zeros(shape, bool)
    for cy, cx in rng.integers(10, min(shape) - 10, size=(12, 2)):
        cells |= (yy - cy) ** 2 + (xx - cx) ** 2 < 36
    background, cell = (100.0, 1000.0) if bright else (1000.0, 300.0)
    return np.where(cells, cell, background) + rng.normal(0, 20, shape)


def test_the_median_position_is_where_the_median_lies_in_the_range() -> None:
    assert median_position(np.arange(101.0)) == pytest.approx(0.5)
    assert median_position(np.full((8, 8), 3.0)) == 0.0  # flat
    assert median_position(np.zeros((0, 8))) == 0.0  # empty
    assert median_position(_spots(bright=True)) < 0.1
    assert median_position(_spots(bright=False)) > 0.4


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_nuclei_are_fluorescence_and_bacteria_transmitted_light(seed: int) -> None:
    assert appearance(synth.nuclei((192, 192), seed=seed)[0]) == FLUORESCENCE
    assert appearance(synth.bacteria((192, 192), seed=seed)[0]) == TRANSMITTED


def test_stacks_and_rgb_images_are_judged_by_their_first_frame_in_grey() -> None:
    dark, light = _spots(bright=True), _spots(bright=False)
    assert appearance(np.stack([dark, light])) == FLUORESCENCE
    assert appearance(np.stack([light, dark])) == TRANSMITTED
    rgb = np.repeat(light[..., None], 3, axis=-1).astype(np.uint16)
    assert appearance(rgb, rgb=True) == TRANSMITTED
    assert appearance(np.tile(dark, (12, 12))) == FLUORESCENCE  # 2400 x 2400: subsampled
