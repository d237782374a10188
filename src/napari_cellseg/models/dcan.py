"""DCAN-style object + contour network (the ``dcan`` family).

After CLB's DCAN (PEERS 4.3; Chen et al. 2016): an encoder, then two branches, "object" and
"contour", each summing side outputs upsampled from the deepest levels. Differences, for
training from scratch on a CPU:

* the encoder is the residual encoder of :mod:`napari_cellseg.models.unet` (``nbase``,
  ``blocks_per_level``) rather than single convolutions with 64-1024 channels;
* side outputs come from the deepest ``min(3, len(nbase))`` levels; each is a transposed
  convolution (kernel ``2 * stride``) to a few channels, BN -> ReLU, then a 1x1 convolution
  giving both branches at once (object, contour);
* the sum is returned before any activation (no ReLU in front of the sigmoid, so
  probabilities are ``sigmoid(output)`` with the full [0, 1] range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from napari_cellseg.models.unet import Encoder, conv_layer, norm_layer

if TYPE_CHECKING:
    from napari_cellseg.models import ModelSpec

#: Number of deepest levels whose side outputs are summed.
N_SIDE = 3
#: Channels of each side output before its 1x1 convolution.
SIDE_WIDTH = 8


class SideOutput(nn.Module):
    """Upsample one level to full resolution and predict (object, contour) from it.

    Parameters
    ----------
    cin
        Channels of the level.
    stride
        Upsampling factor back to the input resolution (a power of 2, at least 1).
    dim
        Number of spatial dimensions (2 or 3).
    dropout
        Channel dropout rate before the 1x1 convolution.
    """

    def __init__(self, cin: int, stride: int, dim: int, dropout: float):
        super().__init__()
        if stride == 1:
            self.up = conv_layer(dim)(cin, SIDE_WIDTH, 3, padding=1, bias=False)
        else:
            transposed = nn.ConvTranspose2d if dim == 2 else nn.ConvTranspose3d
            self.up = transposed(
                cin, SIDE_WIDTH, 2 * stride, stride=stride, padding=stride // 2, bias=False
            )
        self.bn = norm_layer(dim)(SIDE_WIDTH)
        self.drop = (nn.Dropout2d if dim == 2 else nn.Dropout3d)(dropout) if dropout else None
        self.out = conv_layer(dim)(SIDE_WIDTH, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, cin, *spatial / stride)`` -> ``(B, 2, *spatial)``."""
        h = torch.relu(self.bn(self.up(x)))
        if self.drop is not None:
            h = self.drop(h)
        return self.out(h)


class DCAN(nn.Module):
    """Object and contour logits, ``(B, 2, *spatial)``, channel 0 object, channel 1 contour.

    Parameters
    ----------
    spec
        The architecture: ``nchan``, ``dim``, ``nbase``, ``blocks_per_level`` and ``dropout``
        are used.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        nbase = spec.nbase
        self.encoder = Encoder(spec.nchan, nbase, spec.blocks_per_level, spec.dim, spec.dropout)
        self.first_side = max(0, len(nbase) - N_SIDE)
        self.sides = nn.ModuleList(
            SideOutput(nbase[i], 2**i, spec.dim, spec.dropout)
            for i in range(self.first_side, len(nbase))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, nchan, *spatial)`` to ``(B, 2, *spatial)`` pre-activation outputs."""
        feats = self.encoder(x)[self.first_side :]
        out = self.sides[0](feats[0])
        for side, feat in zip(self.sides[1:], feats[1:]):
            out = out + side(feat)
        return out
