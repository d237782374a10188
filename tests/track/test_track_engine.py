"""The tracking engine: windows through a network, decoded into CTC tracks; a real training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import disc
from napari_cellseg.errors import CellsegError
from napari_cellseg.models import ModelSpec
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.engine import Tracker, run, track_stack


class OverlapNet(torch.nn.Module):
    """Says "here" where frame t's cells overlap the seed: a perfect tracker of slow cells."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20 * x[:, 1:2] * x[:, 3:4] - 10


def oracle(window=(32, 32)) -> Tracker:
    return Tracker(
        OverlapNet(),
        ModelSpec(arch="track", nchan=4),
        {"training": {"tyx": list(window)}},
        device="cpu",
        amp="none",
    )


def movie():
    """Per-frame ids scrambled: 10 moves, 20 divides (daughters inside its footprint), 30
    leaves after frame 1, 40 appears at frame 2 (an orphan)."""
    shape = (64, 96)
    lab = np.zeros((3, *shape), np.int32)
    lab[0][disc(shape, (15, 15), 6)] = 10
    lab[0][disc(shape, (40, 60), 10)] = 20
    lab[0][disc(shape, (15, 80), 5)] = 30
    lab[1][disc(shape, (16, 17), 6)] = 4
    lab[1][disc(shape, (40, 54), 4)] = 8
    lab[1][disc(shape, (40, 66), 4)] = 9
    lab[1][disc(shape, (16, 81), 5)] = 2
    lab[2][disc(shape, (17, 18), 6)] = 1
    lab[2][disc(shape, (40, 53), 4)] = 2
    lab[2][disc(shape, (40, 67), 4)] = 3
    lab[2][disc(shape, (55, 10), 4)] = 5
    images = (lab > 0) * 100.0
    return images, lab


def test_an_overlap_oracle_gives_the_exact_lineage():
    images, labels = movie()
    progress = []
    result = run(track_stack(images, labels, model=oracle()), progress.append)
    assert [p.frame for p in progress] == [1, 2, 3]
    assert result.tracks == [
        Track(1, 0, 2, 0),  # 10 -> 4 -> 1
        Track(2, 0, 0, 0),  # 20, divides
        Track(3, 0, 1, 0),  # 30 -> 2, then gone
        Track(4, 1, 2, 2),
        Track(5, 1, 2, 2),
        Track(6, 2, 2, 0),  # the orphan
    ]
    out = result.labels
    assert (out[0][labels[0] == 20] == 2).all()
    assert (out[2][labels[2] == 1] == 1).all()
    assert {int(out[1][labels[1] == 8][0]), int(out[1][labels[1] == 9][0])} == {4, 5}
    assert (out[2][labels[2] == 5] == 6).all()
    assert ((out > 0) == (labels > 0)).all()


def test_keep_outputs_gives_each_seeds_window():
    images, labels = movie()
    result = run(track_stack(images, labels, model=oracle(), keep_outputs=True))
    frame1 = result.outputs[1]
    assert [tid for tid, _, _ in frame1] == [1, 2, 3]
    assert all(p.shape == (32, 32) for _, _, p in frame1)


def test_bad_stacks_and_models_are_refused_with_a_clear_message(tmp_path):
    images, labels = movie()
    with pytest.raises(CellsegError, match="time-lapse"):
        run(track_stack(images[0], labels[0], model=oracle()))
    with pytest.raises(CellsegError, match="frame 1 image is"):
        run(track_stack([images[0], images[1][:10], images[2]], labels, model=oracle()))
    with pytest.raises(CellsegError, match="no tracking model"):
        run(track_stack(images, labels))
    with pytest.raises(CellsegError, match="not a tracking model"):
        Tracker(OverlapNet(), ModelSpec(arch="unet"), {})
    with pytest.raises(CellsegError, match="not one of model, laptrack"):
        run(track_stack(images, labels, method="nearest"))


def test_a_track_model_trains_saves_and_links_a_moving_colony(tmp_path):
    """Real training (tiny network, a few seconds): the model file tracks better than chance."""
    from napari_cellseg.config import TrainConfig
    from napari_cellseg.models.checkpoint import load_checkpoint
    from napari_cellseg.track.samples import items_from_sequence
    from napari_cellseg.train import train

    rng = np.random.default_rng(0)
    shape, n, T = (96, 96), 6, 10
    pos = rng.uniform(15, 80, (n, 2))
    labels = np.zeros((T, *shape), np.int32)
    for t in range(T):
        pos += rng.normal(0, 1.5, pos.shape)
        for i, c in enumerate(pos):
            labels[t][disc(shape, c, 6) & (labels[t] == 0)] = i + 1
    images = (labels > 0) * 150.0 + rng.normal(0, 10, labels.shape)
    tracks = [Track(i + 1, 0, T - 1) for i in range(n)]
    items = items_from_sequence(images, labels, tracks)
    model = tmp_path / "track.pt"
    config = TrainConfig(
        architecture="track",
        tyx=(48, 48),
        n_epochs=6,
        batch_size=8,
        nbase=(8, 16, 32),
        learning_rate=3e-3,
        model=str(model),
        seed=0,
    )
    result = run_train(train(config, items=items))
    assert model.exists() and load_checkpoint(model).spec.nchan == 4
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    # per-frame ids scrambled: the tracker must recover the identities
    scrambled = np.zeros_like(labels)
    for t in range(T):
        perm = rng.permutation(n) + 1
        scrambled[t] = np.where(labels[t] > 0, perm[labels[t] - 1], 0)
    out = run(track_stack(images, scrambled, model=model, device="cpu")).labels
    kept = sum(_same_id_throughout(out, labels, i) for i in range(1, n + 1))
    assert kept >= n - 2, f"only {kept} of {n} cells kept one id over {T} frames"


def _same_id_throughout(out: np.ndarray, truth: np.ndarray, cell: int) -> bool:
    ids = {int(np.bincount(out[t][truth[t] == cell]).argmax()) for t in range(len(out))}
    return len(ids) == 1


def run_train(gen):
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def test_huge_label_ids_are_tracked_without_huge_tables():
    images, labels = movie()
    big = np.where(labels > 0, labels.astype(np.int64) + 2**31, 0).astype(np.uint32)
    result = run(track_stack(images, big, model=oracle()))
    small = run(track_stack(images, labels, model=oracle()))
    assert result.tracks == small.tracks
    np.testing.assert_array_equal(result.labels, small.labels)
