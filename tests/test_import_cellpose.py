"""``cellseg import-cellpose``: a CPnet state dict is read safely and compared layer by layer
with this package's network; the layouts differ, so the command names the first weight that
does not fit and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from napari_cellseg.cli import main
from napari_cellseg.errors import CellsegError
from napari_cellseg.models.convert import (
    closest_spec,
    cpnet_layout,
    first_mismatch,
    read_state_dict,
)

# --- a CPnet with the module names and shapes of Cellpose's resnet_torch / Omnipose's network
# (written here from their published layout: BN -> ReLU -> conv blocks with biases, residual
# levels of four convolutions and a BN -> 1x1 conv shortcut, decoder levels with a style
# Linear per style block, a BN -> ReLU -> 1x1 conv output) --------------------------------


def batchconv(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, k, padding=k // 2))


def batchconv0(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, k, padding=k // 2))


class ResDown(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential()
        for t in range(4):
            self.conv.add_module(f"conv_{t}", batchconv(cin if t == 0 else cout, cout, 3))
        self.proj = batchconv0(cin, cout, 1)


class BatchConvStyle(nn.Module):
    def __init__(self, cin: int, cout: int, style: int):
        super().__init__()
        self.conv = batchconv(cin, cout, 3)
        self.full = nn.Linear(style, cout)


class ResUp(nn.Module):
    def __init__(self, cin: int, cout: int, style: int):
        super().__init__()
        self.conv = nn.Sequential()
        self.conv.add_module("conv_0", batchconv(cin, cout, 3))
        for t in (1, 2, 3):
            self.conv.add_module(f"conv_{t}", BatchConvStyle(cout, cout, style))
        self.proj = batchconv0(cin, cout, 1)


class CPnet(nn.Module):
    def __init__(self, nbase: list[int], nout: int, diam_mean: float | None = None):
        super().__init__()
        self.downsample = nn.Module()
        self.downsample.down = nn.Sequential()
        for n in range(len(nbase) - 1):
            self.downsample.down.add_module(f"res_down_{n}", ResDown(nbase[n], nbase[n + 1]))
        up = [*nbase[1:], nbase[-1]]
        self.upsample = nn.Module()
        self.upsample.up = nn.Sequential()
        for n in range(1, len(up)):
            self.upsample.up.add_module(f"res_up_{n - 1}", ResUp(up[n], up[n - 1], nbase[-1]))
        self.output = batchconv(up[0], nout, 1)
        if diam_mean is not None:  # Cellpose 3 keeps its diameters in the state dict
            self.diam_mean = nn.Parameter(torch.tensor([diam_mean]), requires_grad=False)
            self.diam_labels = nn.Parameter(torch.tensor([diam_mean]), requires_grad=False)


@pytest.fixture
def cellpose_file(tmp_path) -> Path:
    """A Cellpose-3-like state dict: 2 channels, 32-64-128-256, 3 outputs, diameters."""
    path = tmp_path / "cyto3"
    torch.save(CPnet([2, 32, 64, 128, 256], 3, diam_mean=30.0).state_dict(), path)
    return path


def test_the_layout_of_a_cpnet_is_read_from_its_shapes(cellpose_file):
    layout = cpnet_layout(read_state_dict(cellpose_file))
    assert (layout.nchan, layout.nbase, layout.nout) == (2, (32, 64, 128, 256), 3)
    assert (layout.dim, layout.kernel) == (2, 3)
    spec = closest_spec(layout)
    assert (spec.nchan, spec.nbase, spec.n_outputs(), spec.blocks_per_level) == (
        2,
        (32, 64, 128, 256),
        3,
        2,
    )


def test_the_first_misfit_is_cpnets_first_batch_norm_on_the_raw_image(cellpose_file):
    state = read_state_dict(cellpose_file)
    mismatch = first_mismatch(state, closest_spec(cpnet_layout(state)))
    assert mismatch.key == "downsample.down.res_down_0.conv.conv_0.0.weight"
    assert mismatch.shape == (2,)
    assert mismatch.ours == "encoder.stages.0.blocks.0.bn1.weight"
    assert mismatch.our_shape == (32,)
    assert "stem convolution" in mismatch.why


def test_with_matching_widths_the_walk_stops_at_the_first_convolution_bias():
    state = CPnet([32, 32, 64], 3).state_dict()
    mismatch = first_mismatch(state, closest_spec(cpnet_layout(state)))
    assert mismatch.key == "downsample.down.res_down_0.conv.conv_0.2.bias"
    assert mismatch.ours is None and "biases" in mismatch.why


def test_the_command_names_the_misfit_and_writes_nothing(cellpose_file, tmp_path, capsys):
    out = tmp_path / "imported.pt"
    assert main(["import-cellpose", str(cellpose_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a CPnet with 2 input channel(s), levels of 32, 64, 128, 256 channels" in err
    assert "downsample.down.res_down_0.conv.conv_0.0.weight [2]" in err
    assert "encoder.stages.0.blocks.0.bn1.weight is [32]" in err
    assert "docs/models.md" in err and "Nothing was written" in err
    assert list(tmp_path.iterdir()) == [cellpose_file]


def test_a_whole_pickled_model_is_refused_without_unpickling_it(tmp_path, capsys):
    path = tmp_path / "model.pth"
    torch.save(CPnet([1, 8, 16], 3), path)  # the module object, not its state dict
    assert main(["import-cellpose", str(path), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert f"refused to load {path}: it is a python pickle of more than weights" in err
    assert "state_dict()" in err


def test_a_file_that_is_no_cpnet_says_what_it_is(tmp_path):
    sam = tmp_path / "cpsam"
    torch.save({"encoder.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16)}, sam)
    with pytest.raises(CellsegError, match="Cellpose-SAM .* vision transformer"):
        cpnet_layout(read_state_dict(sam), str(sam))
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(CellsegError, match="not a Cellpose/Omnipose CPnet state dict.*conv.weight"):
        cpnet_layout(read_state_dict(other), str(other))
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(CellsegError, match="not a PyTorch file"):
        read_state_dict(text)


def test_a_dataparallel_state_dict_loses_its_module_prefix(tmp_path):
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in CPnet([1, 8, 16], 3).state_dict().items()}, path)
    assert cpnet_layout(read_state_dict(path)).nbase == (8, 16)


def test_an_existing_output_is_refused_before_the_file_is_read(cellpose_file, tmp_path, capsys):
    out = tmp_path / "mine.pt"
    out.write_bytes(b"precious")
    assert main(["import-cellpose", str(cellpose_file), "--out", str(out)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["import-cellpose", str(cellpose_file), "--out", str(cellpose_file)]) == 2
    assert "--out" in capsys.readouterr().err
