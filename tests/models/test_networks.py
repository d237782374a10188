"""Networks: output shapes, padding for odd sizes, reproducibility, bf16 + channels_last."""

from __future__ import annotations

import pytest
import torch

from napari_cellseg.errors import CellsegError
from napari_cellseg.models import ModelSpec, build_model, pad_to_multiple


@pytest.mark.parametrize(
    ("arch", "nclasses", "outputs"),
    [("omni", 2, 3), ("omni", 3, 4), ("unet", 2, 1), ("dcan", 2, 2)],
)
@pytest.mark.parametrize("nbase", [(4, 8), (4, 8, 16), (4, 8, 16, 32, 32)])
def test_output_has_one_channel_per_head_output_at_input_size(arch, nclasses, outputs, nbase):
    spec = ModelSpec(arch, nchan=2, nclasses=nclasses, nbase=nbase, blocks_per_level=1)
    assert spec.n_outputs() == outputs
    x = torch.randn(2, 2, 3 * spec.divisor(), 2 * spec.divisor())
    assert build_model(spec)(x).shape == (2, outputs, *x.shape[2:])


@pytest.mark.parametrize("arch", ["omni", "unet", "dcan"])
def test_concat_skips_dropout_and_no_style_keep_shapes(arch):
    spec = ModelSpec(
        arch, nbase=(4, 8, 16), blocks_per_level=2, dropout=0.2, skip="concat", style=False
    )
    assert build_model(spec)(torch.randn(1, 1, 16, 24)).shape == (1, spec.n_outputs(), 16, 24)


@pytest.mark.parametrize("arch", ["omni", "dcan"])
def test_3d_networks_give_outputs_per_voxel(arch):
    spec = ModelSpec(arch, dim=3, nbase=(4, 8, 16), blocks_per_level=1)
    out = build_model(spec)(torch.randn(1, 1, 8, 12, 16))
    assert out.shape == (1, 4 if arch == "omni" else 2, 8, 12, 16)


def test_divisor_is_two_to_the_number_of_poolings():
    assert ModelSpec("omni", nbase=(8, 16, 32, 64)).divisor() == 8
    assert ModelSpec("dcan", nbase=(8, 16)).divisor() == 2


@pytest.mark.parametrize("shape", [(37, 50), (3, 9), (16, 16), (1, 1)])
def test_pad_to_multiple_pads_evenly_and_crop_restores_the_input(shape):
    x = torch.randn(1, 2, *shape)
    padded, crop = pad_to_multiple(x, 8)
    assert all(n % 8 == 0 and n - s < 8 for n, s in zip(padded.shape[2:], shape))
    assert torch.equal(padded[(..., *crop)], x)
    before = [c.start for c in crop]
    after = [n - c.stop for n, c in zip(padded.shape[2:], crop)]
    assert all(0 <= a - b <= 1 for a, b in zip(after, before))


def test_reflect_padding_mirrors_the_border():
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    padded, crop = pad_to_multiple(x, 8)
    assert crop == (slice(1, 6), slice(1, 6))
    assert padded[0, 0, 1].tolist() == [1, 0, 1, 2, 3, 4, 3, 2]
    assert padded[0, 0, 0].tolist() == [6, 5, 6, 7, 8, 9, 8, 7]


def test_axes_too_short_to_reflect_are_replicated():
    padded, _ = pad_to_multiple(torch.tensor([[[[3.0, 4.0]]]]), 4)
    assert padded[0, 0].tolist() == [[3, 3, 4, 4]] * 4


def test_odd_sized_image_runs_through_padding_and_cropping():
    spec = ModelSpec("omni", nbase=(4, 8, 16, 32), blocks_per_level=1)
    model = build_model(spec).eval()
    x = torch.randn(1, 1, 45, 61)
    padded, crop = pad_to_multiple(x, spec.divisor())
    with torch.no_grad():
        out = model(padded)[(..., *crop)]
    assert out.shape == (1, 3, 45, 61)


def test_3d_padding_pads_three_axes():
    padded, crop = pad_to_multiple(torch.randn(1, 1, 5, 6, 7), 4, dim=3)
    assert padded.shape[2:] == (8, 8, 8)
    assert [c.stop - c.start for c in crop] == [5, 6, 7]


def _train(spec: ModelSpec, seed: int, steps: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, target = torch.randn(2, 1, 16, 16), torch.randn(2, spec.n_outputs(), 16, 16)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), target).backward()
        opt.step()
    return model.state_dict()


@pytest.mark.parametrize("arch", ["omni", "dcan"])
def test_same_seed_gives_bit_identical_weights_after_training(arch):
    spec = ModelSpec(arch, nbase=(4, 8, 16), blocks_per_level=1, dropout=0.1)
    a, b = _train(spec, 7, 3), _train(spec, 7, 3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _train(spec, 8, 3)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("arch", ["omni", "unet", "dcan"])
def test_bf16_autocast_with_channels_last_trains_and_stays_close_to_fp32(arch):
    torch.manual_seed(0)
    spec = ModelSpec(arch, nbase=(8, 16, 32), blocks_per_level=1)
    model = build_model(spec).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == ref.shape
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max() + 0.05
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(x).float().square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"arch": "cellpose"}, "architecture 'cellpose'"),
        ({"arch": "omni", "nclasses": 4}, "nclasses 4"),
        ({"arch": "omni", "nbase": (16,)}, "at least 2 levels"),
        ({"arch": "unet", "dropout": 1.0}, "dropout 1.0"),
        ({"arch": "unet", "skip": "sum"}, "skip 'sum'"),
        ({"arch": "dcan", "dim": 4}, "dim 4"),
    ],
)
def test_invalid_settings_are_refused_with_the_setting_named(kwargs, text):
    with pytest.raises(CellsegError, match=text):
        ModelSpec(**kwargs)


def test_nclasses_is_ignored_outside_omni():
    assert ModelSpec("unet", nclasses=5).n_outputs() == 1
    assert ModelSpec("dcan", nclasses=5).n_outputs() == 2


def test_spec_round_trips_through_a_plain_dict():
    spec = ModelSpec("omni", nchan=2, nclasses=3, nbase=(8, 16, 32), dropout=0.1, skip="concat")
    d = spec.to_dict()
    assert d["nbase"] == [8, 16, 32]
    assert ModelSpec.from_dict(d) == spec


def test_spec_from_a_newer_version_is_refused():
    with pytest.raises(CellsegError, match="newer napari-cellseg"):
        ModelSpec.from_dict({"arch": "omni", "attention": True})


@pytest.mark.parametrize("arch", ["omni", "dcan"])
@pytest.mark.parametrize("skip", ["add", "concat"])
def test_in_place_activations_leave_the_input_alone_and_keep_gradients_exact(arch, skip):
    # the blocks apply ReLU and the residual sums in place: the input must stay untouched and
    # autograd's gradients must still match finite differences
    torch.manual_seed(0)
    spec = ModelSpec(arch, nbase=(2, 4), blocks_per_level=2, skip=skip)
    model = build_model(spec).double().train()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    before = x.detach().clone()
    out = model(x)
    assert torch.equal(x.detach(), before)
    assert torch.equal(model(x), out)
    assert torch.autograd.gradcheck(lambda t: model(t).sum(), (x,), eps=1e-6, atol=1e-5)
