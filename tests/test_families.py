"""The family registry: a family declared in one place is all the package needs.

A family registered here, in the test, trains, saves, loads and predicts through the same
code as the built-in ones (set-up, crops, loss, checkpoint, prediction engine, CLI), and no
other file knows about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellseg import synth
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.families import Family, family_names, get_family, param, register, unregister


@dataclass(frozen=True)
class BlobParams:
    threshold: float = param(0.5, "foreground probability threshold", minimum=0.0, maximum=1.0)
    min_size: int = param(15, "smallest object kept (pixels)", minimum=0)


class Blobs(Family):
    """Foreground logit, objects are its connected components."""

    name = "blobs"
    summary = "test family: connected components of a foreground probability"
    Params = BlobParams

    def n_outputs(self, spec):
        return 1

    def config_problems(self, config):
        problems = super().config_problems(config)  # the base refuses --nclasses 3
        if config.learning_rate > 1:
            problems.append("--learning_rate above 1 makes blobs diverge")
        return problems

    def targets(self, crop, config):
        return np.stack([(crop.labels > 0).astype(np.float32)])

    def loss(self, pred, target, config):
        import torch.nn.functional as F

        loss = F.binary_cross_entropy_with_logits(pred[:, 0], target[:, 0])
        return loss, {"bce": loss.detach()}

    def named_outputs(self, raw, meta):
        return {"prob": 1 / (1 + np.exp(-raw[0]))}

    def reconstruct(self, outputs, params, *, device="cpu"):
        labels, n = ndi.label(outputs["prob"] > params.threshold)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= params.min_size
        keep[0] = False
        relabelled = np.zeros(n + 1, np.int32)
        relabelled[keep] = np.arange(1, keep.sum() + 1)
        return relabelled[labels]


@pytest.fixture
def blobs():
    family = register(Blobs())
    yield family
    unregister("blobs")


def test_a_family_registered_in_the_test_trains_saves_loads_and_predicts(blobs, tmp_path):
    from napari_cellseg.models.checkpoint import load_checkpoint
    from napari_cellseg.predict import Segmenter, predict_frames, results
    from napari_cellseg.train import train_until
    from napari_cellseg.train.samples import make_items

    assert "blobs" in family_names()
    pairs = [synth.nuclei((96, 96), seed=i) for i in range(4)]
    config = TrainConfig(
        architecture="blobs",
        tyx=(64, 64),
        batch_size=4,
        n_epochs=12,
        learning_rate=1e-2,
        warmup_epochs=0,
        nbase=(8, 16),
        model=str(tmp_path / "blobs.pt"),
    )
    items = make_items([p[0] for p in pairs], [p[1] for p in pairs], config)
    result = train_until(config, items=items)
    assert result.epochs_done == 12
    assert set(result.history[-1]) >= {"loss", "bce"}  # the family's loss parts are logged
    assert result.history[-1]["loss"] < result.history[0]["loss"]

    ckpt = load_checkpoint(tmp_path / "blobs.pt")
    assert ckpt.spec.arch == "blobs" and ckpt.spec.n_outputs() == 1
    seg = Segmenter.from_file(tmp_path / "blobs.pt", device="cpu")
    assert seg.family is blobs
    image, truth = synth.nuclei((96, 96), seed=99)
    frames = seg.prepare(image)
    (done,) = results(predict_frames(seg, frames, {"min_size": 5}, keep_outputs=True))
    assert set(done.outputs) == {"prob"}
    # the family's reconstruction, through the engine, on what the network learnt
    inside = done.outputs["prob"][truth > 0].mean()
    outside = done.outputs["prob"][truth == 0].mean()
    assert inside > outside + 0.2
    assert done.labels.max() >= 1
    with pytest.raises(CellsegError, match="mask_threshold do\\(es\\) not apply to blobs models"):
        results(predict_frames(seg, frames, {"mask_threshold": 0.0}))


def test_a_registered_family_is_an_architecture_of_the_cli_and_checks_its_options(blobs):
    import argparse

    from napari_cellseg.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args(["--architecture", "blobs"]))
    assert config.architecture == "blobs"
    with pytest.raises(CellsegError, match="makes blobs diverge"):
        config_from_args(parser.parse_args(["--architecture", "blobs", "--lr", "2"]))
    with pytest.raises(CellsegError, match="nclasses 3 .* is an omni option"):
        TrainConfig(architecture="blobs", nclasses=3).validate()


def test_unknown_families_are_refused_with_the_registered_names():
    from napari_cellseg.models import ModelSpec

    with pytest.raises(CellsegError, match="'lineage' is not one of omni, unet, dcan, track"):
        get_family("lineage")
    with pytest.raises(CellsegError, match="'lineage' is not one of omni, unet, dcan, track"):
        ModelSpec(arch="lineage")
    with pytest.raises(CellsegError, match="'lineage' is not one of omni, unet, dcan, track"):
        TrainConfig(architecture="lineage").validate()


@pytest.mark.parametrize(
    ("arch", "nclasses", "outputs"),
    [("omni", 2, 3), ("omni", 3, 4), ("unet", 2, 1), ("dcan", 2, 2)],
)
def test_the_built_in_families_declare_their_outputs(arch, nclasses, outputs):
    from napari_cellseg.models import ModelSpec

    assert ModelSpec(arch=arch, nclasses=nclasses).n_outputs() == outputs


def test_family_parameters_keep_defaults_for_none_except_automatic_ones():
    omni = get_family("omni")
    params = omni.params(min_size=None, niter=None, flow_threshold=0.0)
    assert (params.min_size, params.niter, params.flow_threshold) == (15, None, 0.0)
    assert get_family("unet").params(threshold=0.7).threshold == 0.7
    with pytest.raises(CellsegError, match="threshold do\\(es\\) not apply to omni models"):
        omni.params(threshold=0.5)


def test_the_track_family_takes_four_channels_and_refuses_to_segment():
    from napari_cellseg.models import ModelSpec

    assert ModelSpec(arch="track", nchan=4).n_outputs() == 1
    with pytest.raises(CellsegError, match="takes 4 input channels, not 1"):
        ModelSpec(arch="track")
    assert get_family("track").input_channels(TrainConfig(architecture="track")) == 4
    assert get_family("track").tracks and not get_family("omni").tracks
    with pytest.raises(CellsegError, match="tracking model"):
        get_family("track").reconstruct({}, get_family("track").params())
