"""``cellseg export --format onnx``: the network in ONNX, equal to PyTorch, dynamic, described."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from export_helpers import real_image, synthetic_image, tiny_model
from napari_cellseg.cli import main
from napari_cellseg.errors import CellsegError
from napari_cellseg.export.onnx import OPSET, export_onnx, read_metadata, run_onnx
from napari_cellseg.models import ModelSpec, build_model
from napari_cellseg.models.checkpoint import load_model, save_checkpoint
from napari_cellseg.preprocess import Channels, prepare_image

FAMILIES = ("omni", "unet", "dcan")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One tiny model per family, exported once: ``arch -> (model file, ONNX file)``."""
    root = tmp_path_factory.mktemp("onnx")
    files = {}
    for arch in FAMILIES:
        model = tiny_model(root / f"{arch}.pt", arch, dcan_final_act="sigmoid")
        files[arch] = (model, export_onnx(model, root / f"{arch}.onnx"))
    return files


def _normalised(raw: np.ndarray, multiple: int) -> np.ndarray:
    """The Segmenter's preparation of a raw image, cropped to multiples: ``(1, C, Y, X)``."""
    image = prepare_image(raw, Channels(), source="test")[0]
    h, w = (n // multiple * multiple for n in image.shape[1:])
    return np.ascontiguousarray(image[None, :, :h, :w])


def _torch(model, x: np.ndarray) -> np.ndarray:
    net, _ = load_model(model)
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _assert_equal_outputs(model, onnx_file, x: np.ndarray) -> None:
    want = _torch(model, x)
    got = run_onnx(onnx_file, x)
    assert got.shape == want.shape
    assert np.abs(want).max() > 1e-2  # the comparison is not between near-zero maps
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", FAMILIES)
def test_onnx_outputs_equal_pytorch_on_a_synthetic_image(exported, arch) -> None:
    model, onnx_file = exported[arch]
    _assert_equal_outputs(model, onnx_file, _normalised(synthetic_image(), 4))


@pytest.mark.parametrize("arch", FAMILIES)
def test_onnx_outputs_equal_pytorch_on_a_real_image(exported, arch, shared_data) -> None:
    model, onnx_file = exported[arch]
    _assert_equal_outputs(model, onnx_file, _normalised(real_image(shared_data), 4))


@pytest.fixture(scope="module")
def nuclei_onnx(tmp_path_factory):
    return export_onnx("nuclei", tmp_path_factory.mktemp("nuclei") / "nuclei.onnx")


def test_builtin_nuclei_onnx_equals_pytorch_on_a_whole_real_image(nuclei_onnx, shared_data) -> None:
    from napari_cellseg.models.builtin import resolve_model

    x = _normalised(real_image(shared_data, crop=None), 8)
    assert x.shape[2] * x.shape[3] > 300_000  # the whole 520x696 BBBC039 image
    _assert_equal_outputs(resolve_model("nuclei"), nuclei_onnx, x)


def test_builtin_nuclei_onnx_equals_pytorch_on_a_synthetic_image(nuclei_onnx) -> None:
    from napari_cellseg.models.builtin import resolve_model

    x = _normalised(synthetic_image((160, 200)), 8)
    _assert_equal_outputs(resolve_model("nuclei"), nuclei_onnx, x)


def test_batch_and_size_are_dynamic_but_off_the_grid_sizes_fail(exported) -> None:
    model, onnx_file = exported["unet"]
    x = np.random.default_rng(1).random((3, 1, 36, 52), dtype=np.float32)
    _assert_equal_outputs(model, onnx_file, x)
    with pytest.raises(Exception, match="(?i)broadcast|dimension|shape"):
        run_onnx(onnx_file, x[:, :, :34])  # 34 is not a multiple of the divisor 4


def test_metadata_records_spec_normalisation_divisor_and_outputs(exported) -> None:
    model, onnx_file = exported["omni"]
    meta = read_metadata(onnx_file)
    assert meta["family"] == "omni"
    assert meta["divisor"] == 4
    assert meta["spec"] == ModelSpec(arch="omni", nbase=(8, 16, 32)).to_dict()
    assert meta["normalization"] == {"method": "percentile", "low": 1.0, "high": 99.8}
    assert [o["name"] for o in meta["outputs"]] == ["flow_y", "flow_x", "dist"]
    assert "multiples of 4" in meta["input"]
    assert meta["card"]["model"]["architecture"] == "omni"
    proto = onnx.load(str(onnx_file))
    assert proto.opset_import[0].version == OPSET
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    dcan = read_metadata(exported["dcan"][1])["outputs"]
    assert "sigmoid" in dcan[0]["meaning"]  # the activation the model trained with


def test_a_tracking_model_is_refused_by_name_and_nothing_is_written(tmp_path) -> None:
    spec = ModelSpec(arch="track", nchan=4, nbase=(8, 16))
    model = save_checkpoint(tmp_path / "linker.pt", build_model(spec), spec, {})
    out = tmp_path / "linker.onnx"
    with pytest.raises(CellsegError, match=r"linker\.pt \(track\) is a tracking model"):
        export_onnx(model, out)
    assert not out.exists()
    assert main(["export", str(model), "--format", "bioimageio", "--out", str(tmp_path / "p")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linker.pt", "linker.yaml"]


def test_cli_writes_onnx_refuses_to_replace_it_and_replaces_it_with_overwrite(
    exported, tmp_path, capsys
) -> None:
    model, _ = exported["dcan"]
    out = tmp_path / "sub" / "dcan.onnx"
    assert main(["export", str(model), "--format", "onnx", "--out", str(out)]) == 0
    assert "multiples of 4" in capsys.readouterr().out
    _assert_equal_outputs(model, out, _normalised(synthetic_image(), 4))
    out.write_bytes(b"mine")
    assert main(["export", str(model), "--format", "onnx", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    args = ["export", str(model), "--format", "onnx", "--out", str(out), "--overwrite"]
    assert main(args) == 0
    _assert_equal_outputs(model, out, _normalised(synthetic_image(), 4))
    assert sorted(p.name for p in out.parent.iterdir()) == ["dcan.onnx"]  # no temporaries


def test_an_opset_below_the_exporters_is_refused(exported, tmp_path, capsys) -> None:
    model, _ = exported["unet"]
    out = tmp_path / "u.onnx"
    assert main(["export", str(model), "--format", "onnx", "--out", str(out), "--opset", "11"]) == 2
    assert "opset 18 or later" in capsys.readouterr().err
    assert not out.exists()


def test_importing_the_export_modules_loads_neither_torch_nor_onnx() -> None:
    code = (
        "import sys, napari_cellseg.export.onnx, napari_cellseg.export.bioimageio, "
        "napari_cellseg.cli.export\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'bioimageio.spec') "
        "if m in sys.modules]\n"
        "print(json.dumps(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
