"""The built-in models ship inside the package, load offline and segment what they were made for."""

from __future__ import annotations

import socket
from importlib import resources
from pathlib import Path

import pytest

from napari_cellseg import synth
from napari_cellseg.errors import CellsegError
from napari_cellseg.io import datasets
from napari_cellseg.metrics import evaluate_pair, summarize
from napari_cellseg.models.builtin import BUILTIN, available, resolve_model
from napari_cellseg.predict import Segmenter, score_dataset

WEIGHTS = Path(str(resources.files("napari_cellseg.models") / "weights"))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("a built-in model tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_built_in_model_is_installed_small_and_loads_offline(offline) -> None:
    assert available() == list(BUILTIN)
    for name, file in BUILTIN.items():
        path = resolve_model(name)
        assert path == WEIGHTS / file
        assert path.stat().st_size <= 20e6
        assert (WEIGHTS / file).with_suffix(".yaml").is_file()
        seg = Segmenter.from_file(name, device="cpu")
        assert seg.arch == "omni" and seg.spec.nchan == 1
        assert seg.meta["description"]


def test_an_unknown_name_lists_the_built_in_models() -> None:
    with pytest.raises(CellsegError, match="nuclei, bacteria_phase"):
        resolve_model("no_such_model")


def test_nuclei_finds_synthetic_nuclei(offline) -> None:
    image, truth = synth.nuclei((256, 256), seed=3)
    seg = Segmenter.from_file("nuclei", device="cpu")
    (result,) = seg.segment_raw(image)
    assert evaluate_pair(truth, result.labels)["ap_50"] > 0.7


def test_bacteria_phase_finds_synthetic_colonies(offline) -> None:
    image, truth = synth.bacteria((256, 256), seed=3)
    seg = Segmenter.from_file("bacteria_phase", device="cpu")
    (result,) = seg.segment_raw(image)
    assert evaluate_pair(truth, result.labels)["ap_50"] > 0.7


def test_nuclei_on_real_bbbc039_validation_images(shared_data: Path, tmp_path: Path) -> None:
    """A few BBBC039 validation images: not trained on, but the weights were chosen on this
    split, so this guards against breakage, it is no measure of accuracy on unseen data
    (docs/builtin_models.md)."""
    val = shared_data / "bbbc039" / "val"
    for mask in sorted(val.glob("*_masks.tif"))[:3]:
        base = mask.name.removesuffix("_masks.tif")
        (tmp_path / f"{base}.tif").symlink_to(val / f"{base}.tif")
        (tmp_path / mask.name).symlink_to(mask)
    rows = score_dataset(
        Segmenter.from_file("nuclei", device="cpu"), datasets.discover(tmp_path, "omnipose")
    )
    assert len(rows) == 3
    assert summarize(rows)["ap_50"] > 0.85
