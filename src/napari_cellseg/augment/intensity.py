"""Omnipose-style intensity augmentation, channel by channel."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi


def _augment_channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensity augmentation of one channel already scaled to [0, 1] (float32, modified)."""
    x = np.power(x, rng.triangular(0.75, 1.0, 2.5), out=x)
    if rng.random() < 0.5:  # defocus
        x = ndi.gaussian_filter(x, rng.uniform(0.0, 2.0), mode="reflect", truncate=3.0)
    if rng.random() < 0.5:  # clip the extreme 0-0.1 % at each end and stretch
        tail = rng.uniform(0.0, 0.1)
        lo, hi = (float(v) for v in np.percentile(x[::2, ::2], [tail, 100.0 - tail]))
        if hi > lo:
            x = np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0, out=x)
    if rng.random() < 0.5:  # speckle noise, variance up to 1e-2
        sigma = math.sqrt(rng.uniform(0.0, 1e-2))
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        x += x * (noise * np.float32(sigma))
    if rng.random() < 0.5:  # 0.1 % salt and pepper
        n = max(1, round(1e-3 * x.size))
        x.reshape(-1)[rng.integers(0, x.size, n)] = rng.integers(0, 2, n)
    if rng.random() < 0.5:  # bit-depth reduction of a 16-bit version
        step = 2.0 ** round(rng.triangular(0.0, 8.0, 14.0))
        np.clip(x, 0.0, 1.0, out=x)
        x = np.floor(x * (65535.0 / step)) * (step / 65535.0)
    return np.clip(x, 0.0, 1.0, out=x)


def intensity_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random intensity changes per channel, after Omnipose's training augmentation.

    Each channel is scaled to [0, 1] by its minimum and maximum, then: gamma ~ triangular(0.75,
    1, 2.5) always, and each with p = 0.5 a Gaussian defocus (sigma ~ U(0, 2)), a clip of the
    extreme 0-0.1 % with contrast stretch, speckle noise (variance ~ U(0, 1e-2)), 0.1 %
    salt-and-pepper pixels and a bit-depth reduction (drop ~triangular(0, 8, 14) of 16 bits).
    The result is mapped back to the channel's original minimum and maximum, so the value range
    given by the shared normalisation is kept. Omnipose's attenuated border "line artifact" is
    not reproduced. Constant channels are returned unchanged.

    Parameters
    ----------
    image
        (C, Y, X) or (Y, X), normalised (roughly 0..1).
    rng
        Source of all randomness.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape; the input is not modified.
    """
    img = np.asarray(image, dtype=np.float32)
    channels = img.reshape(-1, *img.shape[-2:])
    out = np.empty(channels.shape, dtype=np.float32)
    for c, channel in enumerate(channels):
        lo, hi = float(channel.min()), float(channel.max())
        if not hi > lo:  # constant (or NaN) channel
            out[c] = channel
            continue
        x = (channel - np.float32(lo)) * np.float32(1.0 / (hi - lo))
        out[c] = _augment_channel(x, rng) * np.float32(hi - lo) + np.float32(lo)
    return out.reshape(img.shape)
