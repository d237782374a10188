"""Training losses for the three families (torch).

Targets come from :mod:`napari_cellseg.targets` (stacked over the batch and converted to
tensors); predictions are raw network outputs (no final activation). Every loss returns a
scalar float32 tensor (inputs are cast to float32, so they are safe under autocast), or with
``return_parts=True`` the pair ``(loss, parts)`` where ``parts`` maps each component name to
its (unweighted) value as a float, for logging. All are finite on empty crops (no
foreground, everything ignored).

Omnipose (``omni_loss``)
    Raw prediction channels ``[flow_y, flow_x, dist / DIST_SCALE, (boundary logit)]``, all
    O(1). The loss scales them to Omnipose's units: flows of length ``FLOW_SCALE`` (5, the scale
    of a boundary logit) and the distance in pixels (``DIST_BG`` = -5 in background).
DeLTA U-Net (``weighted_bce_loss``)
    One logit channel; target ``[mask, weight]`` from :func:`~napari_cellseg.targets.unet_targets`.
DCAN (``dcan_loss``)
    Two pre-activation channels ``[objects, contours]``; probability ``sigmoid(z)`` or
    ``(tanh(z) + 1) / 2`` depending on ``final_act``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from napari_cellseg.targets.omni import DIST_SCALE, FLOW_SCALE

FINAL_ACTS = ("sigmoid", "tanh")
# Euler term: Omnipose's torchvf IVP loss settings (step dx on 5x flows = sqrt(2) px)
_EULER_STEPS = 2
_EULER_DX = math.sqrt(2.0) / FLOW_SCALE
_EPS = 1e-8


def _result(
    total: Tensor, parts: dict[str, Tensor], return_parts: bool
) -> Tensor | tuple[Tensor, dict[str, float]]:
    """The loss alone, or with its detached components as floats."""
    if not return_parts:
        return total
    return total, {name: float(value.detach()) for name, value in parts.items()}


def _sample(field: Tensor, pos: Tensor) -> Tensor:
    """Bilinear sample of ``field`` (B, 2, Y, X) at pixel positions ``pos`` (B, 2, Y, X)."""
    ny, nx = field.shape[-2:]
    gy = pos[:, 0] * (2.0 / max(ny - 1, 1)) - 1.0
    gx = pos[:, 1] * (2.0 / max(nx - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _euler_loss(flow_pred: Tensor, flow_true: Tensor, weight: Tensor) -> Tensor:
    """Weighted squared distance (px^2) between short Euler trajectories of the two fields.

    Every pixel takes ``_EULER_STEPS`` steps ``x <- x + dx * F(x)`` through the predicted and
    through the target field (bilinear sampling); the loss is the weighted mean squared gap
    between the two positions after each step, averaged over the steps.
    """
    ny, nx = flow_pred.shape[-2:]
    ys = torch.arange(ny, dtype=flow_pred.dtype, device=flow_pred.device)
    xs = torch.arange(nx, dtype=flow_pred.dtype, device=flow_pred.device)
    start = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand_as(flow_pred)
    pos_pred, pos_true = start, start
    total = flow_pred.new_zeros(())
    for _ in range(_EULER_STEPS):
        pos_pred = pos_pred + _EULER_DX * _sample(flow_pred, pos_pred)
        pos_true = pos_true + _EULER_DX * _sample(flow_true, pos_true)
        total = total + (((pos_pred - pos_true) ** 2).sum(dim=1) * weight).mean()
    return total / _EULER_STEPS


def omni_loss(
    pred: Tensor, target: Tensor, nclasses: int, *, return_parts: bool = False
) -> Tensor | tuple[Tensor, dict[str, float]]:
    """Omnipose loss: ``2 * (5 * flow + ssl + boundary + norm + dist) + euler``.

    Parameters
    ----------
    pred : torch.Tensor
        ``(B, nclasses + 1, Y, X)`` raw network output: unit flow (y, x), distance / ``DIST_SCALE``
        and, when ``nclasses == 3``, a boundary logit. The terms below use
        ``y = FLOW_SCALE * flow`` and ``d = DIST_SCALE * pred[:, 2]``.
    target : torch.Tensor
        ``(B, 5, Y, X)`` from :func:`~napari_cellseg.targets.omni_targets` (unit flow, distance,
        boundary, weight).
    nclasses : {2, 3}
        Omnipose's ``--nclasses``: 3 adds the boundary head.
    return_parts : bool, default False
        Also return the components.

    Returns
    -------
    torch.Tensor or (torch.Tensor, dict)
        The scalar loss (and ``{'flow', 'ssl', 'boundary', 'norm', 'dist', 'euler'}``).

    Notes
    -----
    With ``Y = FLOW_SCALE * flow`` the target and ``y`` the predicted flow, ``w`` the weight,
    ``b`` the target boundary (all means are over all pixels):

    - flow: ``mean(w * ((y - Y) / 5)**2)`` (over both components);
    - ssl: ``4 * mean(sin(angle(y, Y))**2)`` over the pixels where ``Y != 0`` (foreground
      pixels off the exact centre of symmetry);
    - norm: ``(mean(b * (|y| - |Y|)**2) / 2 + mean((|y| - |Y|)**2) / 25) / 2``;
    - dist: ``mean(w * ((d - T) / 5)**2)``;
    - boundary: BCE with logits (0 when ``nclasses == 2``);
    - euler: :func:`_euler_loss`, 2 steps of ``sqrt(2) / 5`` on the 5x fields.

    Pixels whose target weight is 0 are ignored by every term (Omnipose's weights are 0.5 and
    1; a caller may zero them, e.g. on CLB blobs).
    """
    if nclasses not in (2, 3):
        raise ValueError(f"nclasses must be 2 or 3, got {nclasses}")
    if pred.shape[1] != nclasses + 1 or target.shape[1] != 5:
        raise ValueError(
            f"expected prediction (B, {nclasses + 1}, Y, X) and target (B, 5, Y, X), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    pred, target = pred.float(), target.float()  # float16 (autocast) would underflow _EPS
    flow_true = FLOW_SCALE * target[:, 0:2]
    dist_true, boundary, weight = target[:, 2], target[:, 3], target[:, 4]
    flow_pred, dist_pred = FLOW_SCALE * pred[:, 0:2], DIST_SCALE * pred[:, 2]
    valid = (weight > 0).to(pred.dtype)  # weight 0: ignored (e.g. CLB blobs)

    flow = (((flow_pred - flow_true) / FLOW_SCALE) ** 2 * weight[:, None]).mean()
    sq_pred = (flow_pred**2).sum(dim=1)
    sq_true = (flow_true**2).sum(dim=1)
    cos2 = (flow_pred * flow_true).sum(dim=1) ** 2 / ((sq_pred + _EPS) * (sq_true + _EPS))
    ssl = 4.0 * ((1.0 - cos2) * (sq_true > 0)).mean()
    gap2 = (torch.sqrt(sq_pred + _EPS) - torch.sqrt(sq_true)) ** 2 * valid
    norm = ((gap2 * boundary).mean() / 2.0 + gap2.mean() / FLOW_SCALE**2) / 2.0
    dist = (((dist_pred - dist_true) / FLOW_SCALE) ** 2 * weight).mean()
    if nclasses == 3:
        entropy = F.binary_cross_entropy_with_logits(pred[:, 3], boundary, reduction="none")
        bnd = (entropy * valid).mean()
    else:
        bnd = pred.new_zeros(())
    euler = _euler_loss(flow_pred * valid[:, None], flow_true, weight)
    total = 2.0 * (5.0 * flow + ssl + bnd + norm + dist) + euler
    parts = {"flow": flow, "ssl": ssl, "boundary": bnd, "norm": norm, "dist": dist}
    return _result(total, {**parts, "euler": euler}, return_parts)


def weighted_bce_loss(
    logits: Tensor,
    target: Tensor,
    *,
    return_parts: bool = False,
    background_rule: bool = True,
) -> Tensor | tuple[Tensor, dict[str, float]]:
    """DeLTA's pixel-weighted binary cross-entropy (segmentation and tracking).

    ``loss = mean(w * bce(z, y)) * 1e6 / sqrt(sum(w))`` with DeLTA's segmentation rule: where
    a background pixel has weight 0, its weight becomes ``sigmoid(z)`` (unweighted background
    then costs in proportion to false-positive confidence). A mask pixel with weight 0 is
    ignored (CLB blobs, see :func:`~napari_cellseg.targets.unet_targets`). DeLTA's tracking
    loss has no such rule (``background_rule=False``): weight 0 is no loss.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, 1, Y, X)`` logits.
    target : torch.Tensor
        ``(B, 2, Y, X)``: binary mask, pixel weights.
    return_parts : bool, default False
        Also return ``{'bce': mean weighted cross-entropy}``.
    background_rule : bool, default True
        Apply the segmentation rule for weight-0 background pixels.

    Returns
    -------
    torch.Tensor or (torch.Tensor, dict)
        The scalar loss. ``sum(w)`` is taken without gradient and at least 1.
    """
    z = logits[:, 0].float()
    mask, weight = target[:, 0].float(), target[:, 1].float()
    entropy = F.binary_cross_entropy_with_logits(z, mask, reduction="none")
    if background_rule:
        unweighted = (weight == 0) & (mask < 0.5)
        weight = torch.where(unweighted, torch.sigmoid(z), weight)
    bce = (weight * entropy).mean()
    scale = 1e6 / torch.sqrt(weight.detach().sum().clamp(min=1.0))
    return _result(bce * scale, {"bce": bce}, return_parts)


def _masked_bce(logits: Tensor, truth: Tensor, valid: Tensor) -> Tensor:
    """Mean binary cross-entropy over the valid pixels (0 when none is valid)."""
    entropy = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
    return (entropy * valid).sum() / valid.sum().clamp(min=1.0)


def dcan_loss(
    pred: Tensor,
    target: Tensor,
    *,
    obj_weight: float = 0.5,
    bnd_weight: float = 0.5,
    final_act: str = "tanh",
    return_parts: bool = False,
) -> Tensor | tuple[Tensor, dict[str, float]]:
    """DCAN loss: ``obj_weight * BCE(objects) + bnd_weight * BCE(contours)`` over valid pixels.

    Parameters
    ----------
    pred : torch.Tensor
        ``(B, 2, Y, X)`` pre-activation outputs ``[objects, contours]``.
    target : torch.Tensor
        ``(B, 3, Y, X)`` from :func:`~napari_cellseg.targets.dcan_targets`.
    obj_weight, bnd_weight : float, default 0.5
        CLB's ``--obj_weight`` and ``--bnd_weight``.
    final_act : {'sigmoid', 'tanh'}, default 'tanh'
        CLB's ``--dcan_final_act``: the probability is ``sigmoid(z)`` or ``(tanh(z) + 1) / 2``
        (= ``sigmoid(2 z)``, so the cross-entropy is taken on the logit ``2 z``, stably).
    return_parts : bool, default False
        Also return ``{'objects', 'contours'}``.

    Returns
    -------
    torch.Tensor or (torch.Tensor, dict)
        The scalar loss.
    """
    if final_act not in FINAL_ACTS:
        raise ValueError(f"final_act must be one of {FINAL_ACTS}, got {final_act!r}")
    logits = pred.float() if final_act == "sigmoid" else 2.0 * pred.float()
    target = target.float()
    valid = target[:, 2]
    objects = _masked_bce(logits[:, 0], target[:, 0], valid)
    contours = _masked_bce(logits[:, 1], target[:, 1], valid)
    total = obj_weight * objects + bnd_weight * contours
    return _result(total, {"objects": objects, "contours": contours}, return_parts)
