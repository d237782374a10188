"""Residual U-Net shared by the ``omni`` and ``unet`` families.

The network follows the description of Omnipose's ``CPnet`` (PEERS 1.5) and DeLTA's U-Net
(PEERS 3.2), re-implemented for CPU training speed:

* a 3x3 stem, then ``len(nbase)`` levels of ``blocks_per_level`` pre-activation residual blocks
  (BN -> ReLU -> 3x3 conv, twice, plus a shortcut), max-pool x2 between levels;
* a decoder that projects the deeper features to the level's width at low resolution (1x1 conv),
  upsamples them (nearest) and adds (``skip='add'``) or concatenates (``skip='concat'``) the
  encoder features of that level, then runs residual blocks again;
* an optional global "style" vector (L2-normalised mean of the deepest features) added, through a
  linear map per block, to every decoder block;
* a BN -> ReLU -> 1x1 conv head giving raw outputs (no final activation).

Each level costs about the same when widths double, so the full-resolution width ``nbase[0]``
and ``blocks_per_level`` set the speed; the number of levels sets the receptive field.
``dim`` selects 2D or 3D layers. Inputs must be divisible by ``2 ** (len(nbase) - 1)`` in every
spatial axis (see :func:`napari_cellseg.models.pad_to_multiple`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from napari_cellseg.models import ModelSpec


def conv_layer(dim: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """The convolution class for ``dim`` spatial dimensions (2 or 3)."""
    return nn.Conv2d if dim == 2 else nn.Conv3d


def norm_layer(dim: int) -> type[nn.BatchNorm2d] | type[nn.BatchNorm3d]:
    """The batch-norm class for ``dim`` spatial dimensions (2 or 3)."""
    return nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d


class ResBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(relu(bn(conv(relu(bn(x))))))``.

    Parameters
    ----------
    cin, cout
        Input and output channels; a 1x1 convolution projects the shortcut when they differ.
    dim
        Number of spatial dimensions (2 or 3).
    dropout
        Channel dropout rate applied between the two convolutions (0 disables it).
    style_dim
        Length of the style vector added after the first convolution (0: no style input).
    """

    def __init__(self, cin: int, cout: int, dim: int, dropout: float = 0.0, style_dim: int = 0):
        super().__init__()
        conv, norm = conv_layer(dim), norm_layer(dim)
        self.bn1 = norm(cin)
        self.conv1 = conv(cin, cout, 3, padding=1, bias=False)
        self.bn2 = norm(cout)
        self.drop = (nn.Dropout2d if dim == 2 else nn.Dropout3d)(dropout) if dropout else None
        self.conv2 = conv(cout, cout, 3, padding=1, bias=False)
        self.proj = conv(cin, cout, 1, bias=False) if cin != cout else None
        self.style = nn.Linear(style_dim, cout) if style_dim else None

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block; ``style`` is ``(B, style_dim)`` when the block takes one."""
        # in-place activations and sums on fresh tensors: on a CPU these memory-bound passes
        # cost as much as the convolutions, mostly in allocating their outputs
        h = F.relu(self.bn1(x), inplace=True)
        shortcut = x if self.proj is None else self.proj(h)
        h = self.conv1(h)
        if self.style is not None:
            h.add_(self.style(style).reshape(*h.shape[:2], *(1,) * (h.ndim - 2)))
        h = F.relu(self.bn2(h), inplace=True)
        if self.drop is not None:
            h = self.drop(h)
        return self.conv2(h).add_(shortcut)


class ResStage(nn.Module):
    """``n`` residual blocks, the first changing ``cin`` channels to ``cout``."""

    def __init__(self, cin: int, cout: int, n: int, dim: int, dropout: float, style_dim: int = 0):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(cin if i == 0 else cout, cout, dim, dropout, style_dim) for i in range(n)
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the blocks in turn."""
        for block in self.blocks:
            x = block(x, style)
        return x


class Encoder(nn.Module):
    """Stem and one residual stage per level, max-pool x2 between levels.

    Parameters
    ----------
    nchan
        Input channels.
    nbase
        Channels per level, full resolution first.
    blocks
        Residual blocks per level.
    dim
        Number of spatial dimensions (2 or 3).
    dropout
        Channel dropout rate inside the blocks.
    """

    def __init__(self, nchan: int, nbase: tuple[int, ...], blocks: int, dim: int, dropout: float):
        super().__init__()
        self.stem = conv_layer(dim)(nchan, nbase[0], 3, padding=1, bias=False)
        widths = (nbase[0], *nbase)
        self.stages = nn.ModuleList(
            ResStage(widths[i], widths[i + 1], blocks, dim, dropout) for i in range(len(nbase))
        )
        self.pool = nn.MaxPool2d(2) if dim == 2 else nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of every level, full resolution first."""
        feats = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(self.pool(x) if i else x)
            feats.append(x)
        return feats


class ResUNet(nn.Module):
    """Residual U-Net giving ``spec.n_outputs()`` raw output channels at input resolution.

    Parameters
    ----------
    spec
        The architecture: ``nchan``, ``dim``, ``nbase``, ``blocks_per_level``, ``dropout``,
        ``skip`` and ``style`` are used, the number of outputs comes from ``spec.n_outputs()``.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        nbase, dim, nblocks = spec.nbase, spec.dim, spec.blocks_per_level
        conv = conv_layer(dim)
        self.concat = spec.skip == "concat"
        self.encoder = Encoder(spec.nchan, nbase, nblocks, dim, spec.dropout)
        self.style = spec.style
        style_dim = nbase[-1] if spec.style else 0
        levels = range(len(nbase) - 1)
        self.lateral = nn.ModuleList(conv(nbase[i + 1], nbase[i], 1, bias=False) for i in levels)
        self.decoder = nn.ModuleList(
            ResStage(
                nbase[i] * (2 if self.concat else 1),
                nbase[i],
                nblocks,
                dim,
                spec.dropout,
                style_dim,
            )
            for i in levels
        )
        self.head_bn = norm_layer(dim)(nbase[0])
        self.head = conv(nbase[0], spec.n_outputs(), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, nchan, *spatial)`` to ``(B, n_outputs, *spatial)``."""
        feats = self.encoder(x)
        h = feats[-1]
        style = None
        if self.style:
            at_least_fp32 = h.to(torch.promote_types(h.dtype, torch.float32))
            style = F.normalize(at_least_fp32.mean(dim=tuple(range(2, h.ndim))), dim=1)
        for i in reversed(range(len(feats) - 1)):
            up = F.interpolate(self.lateral[i](h), scale_factor=2.0, mode="nearest")
            h = torch.cat((up, feats[i]), dim=1) if self.concat else up.add_(feats[i])
            h = self.decoder[i](h, style)
        return self.head(F.relu(self.head_bn(h), inplace=True))
