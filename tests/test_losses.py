"""Losses: zero when perfect, trainable, finite on empty crops, blind to ignored pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_cellseg.losses import dcan_loss, omni_loss, weighted_bce_loss
from napari_cellseg.targets import (
    DIST_SCALE,
    dcan_targets,
    omni_targets_batch,
    unet_targets,
)


def labels_batch() -> np.ndarray:
    lab = np.zeros((2, 24, 32), dtype=np.int32)
    yy, xx = np.indices(lab.shape[1:])
    lab[0][(yy - 12) ** 2 + (xx - 9) ** 2 <= 36] = 2
    lab[0, 6:18, 15:25] = 3
    lab[1, 0:10, 0:12] = 4
    lab[1, 14:20, 20:30] = 1
    return lab


def omni_target() -> torch.Tensor:
    return torch.from_numpy(omni_targets_batch(labels_batch()))


def perfect_omni(target: torch.Tensor, nclasses: int) -> torch.Tensor:
    channels = [target[:, 0:2], target[:, 2:3] / DIST_SCALE]  # raw outputs are O(1)
    if nclasses == 3:
        channels.append(30.0 * (2.0 * target[:, 3:4] - 1.0))
    return torch.cat(channels, dim=1)


@pytest.mark.parametrize("nclasses", [2, 3])
def test_omni_loss_is_zero_for_the_perfect_prediction(nclasses):
    target = omni_target()
    loss, parts = omni_loss(perfect_omni(target, nclasses), target, nclasses, return_parts=True)
    assert loss.ndim == 0 and float(loss) < 1e-5
    assert set(parts) == {"flow", "ssl", "boundary", "norm", "dist", "euler"}
    assert all(abs(v) < 1e-5 for v in parts.values())


def test_omni_loss_penalises_a_wrong_flow_direction():
    target = omni_target()
    pred = perfect_omni(target, 2)
    pred[:, 0:2] *= -1
    _, parts = omni_loss(pred, target, 2, return_parts=True)
    assert parts["ssl"] < 1e-5  # sine squared is blind to the sign ...
    assert parts["flow"] > 0.5 and parts["euler"] > 0.5  # ... the others are not


def fit(loss_fn, channels: int, target: torch.Tensor, steps: int = 30) -> list[float]:
    torch.manual_seed(0)
    pred = torch.zeros(target.shape[0], channels, *target.shape[2:], requires_grad=True)
    optimiser = torch.optim.Adam([pred], lr=0.1)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_fn(pred, target)
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    return history


def test_omni_loss_decreases_under_optimisation():
    history = fit(lambda p, t: omni_loss(p, t, 3), 4, omni_target())
    assert history[-1] < 0.5 * history[0]


def test_weighted_bce_decreases_under_optimisation():
    target = torch.from_numpy(np.stack([unet_targets(lab) for lab in labels_batch()]))
    history = fit(weighted_bce_loss, 1, target)
    assert history[-1] < 0.5 * history[0]


def test_dcan_loss_decreases_under_optimisation():
    target = torch.from_numpy(np.stack([dcan_targets(lab) for lab in labels_batch()]))
    history = fit(dcan_loss, 2, target)
    assert history[-1] < 0.5 * history[0]


def empty_targets() -> dict[str, torch.Tensor]:
    empty = np.zeros((2, 16, 16), dtype=np.int32)
    blobs = np.ones((2, 16, 16), dtype=np.int32)
    return {
        "omni": torch.from_numpy(omni_targets_batch(empty)),
        "unet": torch.from_numpy(np.stack([unet_targets(x) for x in empty])),
        "unet_2d": torch.from_numpy(
            np.stack([unet_targets(x, weight_map="seg_weights_2D") for x in empty])
        ),
        "unet_ignored": torch.from_numpy(np.stack([unet_targets(x) for x in blobs])),
        "dcan": torch.from_numpy(np.stack([dcan_targets(x) for x in empty])),
        "dcan_ignored": torch.from_numpy(np.stack([dcan_targets(x) for x in blobs])),
    }


@pytest.mark.parametrize(
    ("key", "channels", "loss_fn"),
    [
        ("omni", 4, lambda p, t: omni_loss(p, t, 3)),
        ("omni", 3, lambda p, t: omni_loss(p, t, 2)),
        ("unet", 1, weighted_bce_loss),
        ("unet_2d", 1, weighted_bce_loss),
        ("unet_ignored", 1, weighted_bce_loss),
        ("dcan", 2, dcan_loss),
        ("dcan_ignored", 2, dcan_loss),
    ],
)
def test_losses_are_finite_on_empty_crops(key, channels, loss_fn):
    target = empty_targets()[key]
    for start in (torch.zeros, torch.randn):
        pred = start(2, channels, 16, 16).requires_grad_()
        loss = loss_fn(pred, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()


def test_weighted_bce_hand_computed_value():
    logits = torch.zeros(1, 1, 1, 3)
    target = torch.tensor([[[[1.0, 0.0, 0.0]], [[2.0, 0.0, 3.0]]]])
    # weights (2, sigmoid(0) = 0.5, 3); every entropy is log 2
    expected = (2.0 + 0.5 + 3.0) * math.log(2.0) / 3 * 1e6 / math.sqrt(5.5)
    loss, parts = weighted_bce_loss(logits, target, return_parts=True)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert parts["bce"] == pytest.approx(5.5 * math.log(2.0) / 3, rel=1e-5)


def test_weighted_bce_is_minimal_for_the_perfect_prediction():
    target = torch.from_numpy(np.stack([unet_targets(lab) for lab in labels_batch()]))
    perfect = 30.0 * (2.0 * target[:, :1] - 1.0)
    assert weighted_bce_loss(perfect, target).item() < 1e-6
    assert weighted_bce_loss(-perfect, target).item() > 1e3


def test_losses_accept_half_precision_predictions():
    target = omni_target()
    pred = torch.zeros(2, 4, 24, 32, dtype=torch.float16, requires_grad=True)
    loss = omni_loss(pred, target, 3)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(pred.grad).all()


def test_weighted_bce_ignores_blobs_but_not_unweighted_background():
    lab = np.zeros((12, 12), dtype=np.int32)
    lab[2:6, 2:6] = 1  # blob
    lab[7:11, 7:11] = 2
    target = torch.from_numpy(unet_targets(lab, weight_map="seg_weights_2D")[None])
    logits = torch.randn(1, 1, 12, 12, requires_grad=True)
    weighted_bce_loss(logits, target).backward()
    grad = logits.grad[0, 0]
    assert torch.all(grad[2:6, 2:6] == 0)
    background = (target[0, 0] == 0) & (target[0, 1] == 0)
    assert background.any() and torch.all(grad[background] != 0)


def test_dcan_ignores_blobs_and_tanh_is_a_scaled_sigmoid():
    lab = np.zeros((12, 12), dtype=np.int32)
    lab[2:6, 2:6] = 1
    lab[7:11, 7:11] = 2
    target = torch.from_numpy(dcan_targets(lab)[None])
    pred = torch.randn(1, 2, 12, 12, requires_grad=True)
    loss, parts = dcan_loss(pred, target, obj_weight=0.3, bnd_weight=0.7, return_parts=True)
    loss.backward()
    assert torch.all(pred.grad[:, :, 2:6, 2:6] == 0)
    assert loss.item() == pytest.approx(0.3 * parts["objects"] + 0.7 * parts["contours"])
    tanh = dcan_loss(pred.detach(), target, final_act="tanh")
    sigmoid = dcan_loss(2 * pred.detach(), target, final_act="sigmoid")
    assert float(tanh) == pytest.approx(float(sigmoid))
    perfect = 30.0 * (2.0 * target[:, :2] - 1.0)
    assert float(dcan_loss(perfect, target, final_act="sigmoid")) < 1e-6
    with pytest.raises(ValueError, match="final_act"):
        dcan_loss(pred, target, final_act="relu")


def test_omni_loss_ignores_pixels_of_weight_zero():
    lab = labels_batch()
    blob = lab == 1
    target = omni_targets_batch(np.where(blob, 0, lab))
    target[:, 4][blob] = 0.0
    pred = torch.randn(2, 4, 24, 32, requires_grad=True)
    omni_loss(pred, torch.from_numpy(target), 3).backward()
    assert torch.all(pred.grad.permute(1, 0, 2, 3)[:, torch.from_numpy(blob)] == 0)
    assert torch.all(pred.grad.permute(1, 0, 2, 3)[:, torch.from_numpy(~blob)].abs().sum(0) > 0)


def test_omni_loss_checks_channels():
    target = omni_target()
    with pytest.raises(ValueError, match="nclasses"):
        omni_loss(torch.zeros(2, 4, 24, 32), target, 4)
    with pytest.raises(ValueError, match="expected"):
        omni_loss(torch.zeros(2, 4, 24, 32), target, 2)
