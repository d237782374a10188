"""``cellseg export --format bioimageio``: a valid package, its weights run without us."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from export_helpers import real_image, real_image_path, synthetic_image, tiny_model
from napari_cellseg.cli import main
from napari_cellseg.errors import CellsegError
from napari_cellseg.export.bioimageio import export_bioimageio, validate_package
from napari_cellseg.models.checkpoint import load_model


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """An omni model's package folder, test tensors from a synthetic image."""
    root = tmp_path_factory.mktemp("bioimageio")
    model = tiny_model(root / "omni.pt", "omni")
    out = export_bioimageio(model, root / "omni_pkg", image=synthetic_image(), authors=["A. B."])
    return model, out


def _scale_range(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """bioimage.io's scale_range over (y, x), as a consumer computes it (numpy only)."""
    lo = np.percentile(x, low, axis=(2, 3), keepdims=True)
    hi = np.percentile(x, high, axis=(2, 3), keepdims=True)
    return ((x - lo) / (hi - lo + 1e-6)).astype(np.float32)


def _consume(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """What a bioimage.io consumer does with a package folder, without napari-cellseg: the
    preprocessing of rdf.yaml, then the ONNX and the TorchScript weights on the test input."""
    import onnxruntime as ort

    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    kwargs = inp["preprocessing"][0]["kwargs"]
    x = _scale_range(
        np.load(folder / inp["test_tensor"]["source"]),
        kwargs["min_percentile"],
        kwargs["max_percentile"],
    )
    session = ort.InferenceSession(str(folder / rdf["weights"]["onnx"]["source"]))
    by_onnx = session.run(None, {session.get_inputs()[0].name: x})[0]
    scripted = torch.jit.load(str(folder / rdf["weights"]["torchscript"]["source"]))
    with torch.no_grad():
        by_torchscript = scripted(torch.from_numpy(x)).numpy()
    return np.load(folder / out["test_tensor"]["source"]), by_onnx, by_torchscript, rdf


def test_package_is_valid_and_its_weights_reproduce_the_test_output(package) -> None:
    model, folder = package
    descr = validate_package(folder / "rdf.yaml")
    assert descr.validation_summary.status != "failed"
    expected, by_onnx, by_torchscript, rdf = _consume(folder)
    assert expected.shape == (1, 3, 96, 136)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(by_onnx, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(by_torchscript, expected, rtol=0, atol=1e-4)
    # the test output is the PyTorch model's, on the image normalised as the Segmenter does
    from napari_cellseg.normalize import normalize_percentile

    net, _ = load_model(model)
    raw = np.load(folder / "test_input.npy")
    np.testing.assert_array_equal(raw[0, 0], synthetic_image())  # raw values, not normalised
    with torch.no_grad():
        direct = net(torch.from_numpy(normalize_percentile(raw[0])[None])).numpy()
    np.testing.assert_allclose(expected, direct, rtol=0, atol=1e-5)


def test_description_declares_axes_preprocessing_weights_and_people(package) -> None:
    _, folder = package
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5.")
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert inp["axes"][2]["size"] == {"min": 4, "step": 4}
    assert inp["axes"][3]["size"] == {"min": 4, "step": 4}
    assert inp["preprocessing"] == [
        {
            "id": "scale_range",
            "kwargs": {"axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.8},
        }
    ]
    assert out["axes"][1]["channel_names"] == ["flow_y", "flow_x", "dist"]
    assert out["axes"][2]["size"] == {"tensor_id": "raw", "axis_id": "y"}
    assert set(rdf["weights"]) == {"onnx", "torchscript"}
    assert rdf["weights"]["onnx"]["opset_version"] == 18
    assert rdf["authors"] == [{"name": "A. B."}]
    assert rdf["license"] == "CC-BY-4.0"
    assert rdf["cite"][0]["doi"] == "10.1038/s41592-022-01639-4"
    assert rdf["config"]["napari-cellseg"]["divisor"] == 4


def test_readme_says_what_the_outputs_mean_and_how_to_get_masks(package) -> None:
    _, folder = package
    readme = (folder / "README.md").read_text()
    for text in ("`flow_y`", "`dist`", "multiples of 4", "cellseg predict", "mask_threshold"):
        assert text in readme
    assert "reconstruction" in readme and "not in the\npackage" in readme
    assert "### omni" in readme  # the model card, its headings nested


def test_cover_shows_the_test_image_beside_its_masks(package) -> None:
    _, folder = package
    cover = np.asarray(Image.open(folder / "cover.png"))
    assert cover.shape == (96, 272, 3)
    left = cover[:, :136]
    assert np.array_equal(left[..., 0], left[..., 2])  # the image, plain greyscale
    assert left.std() > 10


@pytest.mark.parametrize("arch", ["unet", "dcan"])
def test_zipped_package_from_a_real_image_via_the_cli(arch, tmp_path, shared_data) -> None:
    model = tiny_model(tmp_path / f"{arch}.pt", arch)
    image = real_image_path(shared_data)
    out = tmp_path / "pkg.zip"
    args = ["export", str(model), "--format", "bioimageio", "--out", str(out)]
    assert main([*args, "--image", str(image), "--author", "C. D."]) == 0
    validate_package(out)
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path / "unzipped")
    expected, by_onnx, by_torchscript, rdf = _consume(tmp_path / "unzipped")
    assert expected.shape[2:] == (256, 256)  # a centre crop of the 520x696 image
    np.testing.assert_allclose(by_onnx, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(by_torchscript, expected, rtol=0, atol=1e-4)
    assert len(rdf["outputs"][0]["axes"][1]["channel_names"]) == (1 if arch == "unet" else 2)
    centre = real_image(shared_data, crop=None)[132:388, 220:476]
    np.testing.assert_array_equal(np.load(tmp_path / "unzipped" / "test_input.npy")[0, 0], centre)


def test_an_existing_package_is_replaced_only_with_overwrite(package, tmp_path, capsys) -> None:
    model, _ = package
    out = tmp_path / "pkg.zip"
    out.write_bytes(b"mine")
    args = ["export", str(model), "--format", "bioimageio", "--out", str(out), "--author", "E"]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep")
    argv = ["export", str(model), "--format", "bioimageio", "--out", str(folder), "--author", "E"]
    for extra in ([], ["--overwrite"]):  # a folder that is not a package: never replaced
        assert main([*argv, *extra]) == 2
    assert "not a bioimage.io package" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "pkg.zip"]


def test_a_package_folder_is_replaced_whole_with_overwrite(tmp_path) -> None:
    model = tiny_model(tmp_path / "m.pt", "unet")
    out = tmp_path / "pkg"
    export_bioimageio(model, out, authors=["E"])
    (out / "stale.txt").write_text("from before")
    with pytest.raises(CellsegError, match="already holds a bioimage.io package"):
        export_bioimageio(model, out, authors=["E"])
    export_bioimageio(model, out, authors=["F"], overwrite=True)
    assert not (out / "stale.txt").exists()
    assert yaml.safe_load((out / "rdf.yaml").read_text())["authors"] == [{"name": "F"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.yaml", "pkg"]


def test_a_package_failing_validation_leaves_nothing_behind(package, tmp_path) -> None:
    model, _ = package
    with pytest.raises(CellsegError, match="fails validation.*license"):
        export_bioimageio(model, tmp_path / "p.zip", authors=["E"], license="NOT-A-LICENCE")
    assert list(tmp_path.iterdir()) == []  # neither the zip nor the build folder


def test_a_test_image_in_which_the_network_finds_nothing_is_refused(tmp_path) -> None:
    model = tiny_model(tmp_path / "m.pt", "unet", bias=-20.0)  # every logit far below 0
    with pytest.raises(CellsegError, match="finds \\(almost\\) nothing.*--image"):
        export_bioimageio(model, tmp_path / "p.zip", authors=["E"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.yaml"]


def test_authors_are_required_except_for_built_in_models(package, tmp_path) -> None:
    model, _ = package
    with pytest.raises(CellsegError, match="--author"):
        export_bioimageio(model, tmp_path / "p.zip")
    assert list(tmp_path.iterdir()) == []


def test_bioimageio_core_runs_the_package(package) -> None:
    """The ecosystem's own test (its preprocessing, each weight format, several sizes)."""
    core = pytest.importorskip("bioimageio.core")
    _, folder = package
    for weights in ("onnx", "torchscript"):
        summary = core.test_model(folder / "rdf.yaml", weight_format=weights)
        assert summary.status == "passed", summary.format()
