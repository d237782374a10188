"""The Train widget's data path with a tracking model: whole time-lapses, their track tables."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_cellseg import synth
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.models.checkpoint import load_checkpoint
from napari_cellseg.napari.train.data import copy_pairs
from napari_cellseg.napari.train.pairs import Pair
from napari_cellseg.napari.train.worker import run_training


def test_a_tracked_stack_trains_a_tracking_model_with_its_divisions(tmp_path):
    movie = synth.timelapse("nuclei", n_frames=5, shape=(64, 64), n_cells=3, seed=0, cycle=3)
    layers = {
        "movie": Image(movie.images, name="movie"),
        "movie tracked": Labels(
            movie.labels, name="movie tracked", metadata={"tracks": movie.tracks}
        ),
    }
    config = TrainConfig(
        architecture="track",
        tyx=(32, 32),
        nbase=(8, 16),
        batch_size=4,
        n_epochs=1,
        model=str(tmp_path / "t.pt"),
    ).validate()
    data = copy_pairs(layers, [Pair("movie tracked", "movie")], config)
    assert len(data.images) == 1 and data.images[0].shape == (5, 64, 64)
    assert data.tracks == [movie.tracks]
    gen = run_training(config, data, None, stop=threading.Event())
    while True:
        try:
            next(gen)
        except StopIteration as done:
            result = done.value
            break
    assert load_checkpoint(result.model_path).spec.arch == "track"
    n_samples = sum(len(np.unique(f)) - 1 for f in movie.labels[:-1])
    assert result.history[0]["loss"] > 0 and n_samples > 3


def test_a_single_frame_is_refused_for_a_tracking_model():
    layers = {
        "img": Image(np.zeros((32, 32)), name="img"),
        "img_masks": Labels(np.zeros((32, 32), np.int32), name="img_masks"),
    }
    config = TrainConfig(architecture="track").validate()
    with pytest.raises(CellsegError, match="time-lapses"):
        copy_pairs(layers, [Pair("img_masks", "img")], config)
