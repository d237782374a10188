"""The same results on a CUDA GPU as on the CPU (skipped without one)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg import synth
from napari_cellseg.metrics import evaluate_pair

pytestmark = pytest.mark.gpu


def test_builtin_nuclei_on_the_gpu_finds_what_it_finds_on_the_cpu() -> None:
    from napari_cellseg.predict import Segmenter

    image, truth = synth.nuclei((384, 384), seed=2)
    cpu = Segmenter.from_file("nuclei", device="cpu")
    gpu = Segmenter.from_file("nuclei", device="cuda")
    (on_cpu,) = cpu.segment_raw(image)
    (on_gpu,) = gpu.segment_raw(image)
    assert evaluate_pair(on_cpu.labels, on_gpu.labels)["ap_50"] >= 0.95
    assert evaluate_pair(truth, on_gpu.labels)["ap_50"] >= 0.9


def test_training_steps_on_the_gpu_lower_the_loss(tmp_path) -> None:
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.train import train_until
    from napari_cellseg.train.samples import make_items

    pairs = [synth.bacteria((128, 128), seed=i) for i in range(2)]
    config = TrainConfig(
        device="cuda", tyx=(128, 128), batch_size=4, n_epochs=8, nbase=(16, 32, 64),
        nimg_per_epoch=8, model=str(tmp_path / "m.pt"), learning_rate=5e-3,
    )  # fmt: skip
    items = make_items([p[0] for p in pairs], [p[1] for p in pairs], config)
    history = train_until(config, None, items).history
    assert np.isfinite([h["loss"] for h in history]).all()
    assert history[-1]["loss"] < history[0]["loss"]
