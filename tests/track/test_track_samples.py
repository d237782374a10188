"""Tracking samples, windows and DeLTA's tracking weights."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import disc
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.samples import (
    TrackCropMaker,
    cut,
    items_from_sequence,
    read_delta_folders,
    window_box,
)
from napari_cellseg.track.weights import SKELETON_WEIGHT, tracking_weights


def dividing_movie():
    """Frame 0: cells 1 and 2; frame 1: 1 moved, 2 divided into 3 and 4; frame 2: 1 left."""
    shape = (64, 96)
    labels = np.zeros((3, *shape), np.int32)
    labels[0][disc(shape, (20, 20), 6)] = 1
    labels[0][disc(shape, (40, 60), 8)] = 2
    labels[1][disc(shape, (22, 21), 6)] = 1
    labels[1][disc(shape, (40, 52), 5)] = 3
    labels[1][disc(shape, (40, 68), 5)] = 4
    labels[2][disc(shape, (40, 51), 5)] = 3
    labels[2][disc(shape, (41, 69), 5)] = 4
    tracks = [Track(1, 0, 1), Track(2, 0, 0), Track(3, 1, 2, 2), Track(4, 1, 2, 2)]
    images = [(lab > 0) * 200.0 + 10 for lab in labels]
    return images, labels, tracks


def test_each_cell_of_the_previous_frame_is_a_sample_with_what_it_became():
    images, labels, tracks = dividing_movie()
    items = items_from_sequence(images, labels, tracks, name="movie")
    found = {(it.pair.name, it.seed): it.targets for it in items}
    assert found == {
        ("movie t=1", 1): (1,),
        ("movie t=1", 2): (3, 4),
        ("movie t=2", 3): (3,),
        ("movie t=2", 4): (4,),
        ("movie t=2", 1): (),
    }
    centre = next(it.centre for it in items if it.seed == 2)
    assert centre == pytest.approx((40, 60), abs=1e-6)
    assert [it.divides for it in items].count(True) == 1


def test_a_frame_range_keeps_only_its_pairs():
    images, labels, tracks = dividing_movie()
    items = items_from_sequence(images, labels, tracks, frames=(1, 3))
    assert {it.pair.name for it in items} == {"sequence t=2"}


def test_a_2d_array_or_frames_of_another_shape_are_refused_naming_the_frame():
    images, labels, tracks = dividing_movie()
    with pytest.raises(CellsegError, match="time-lapse"):
        items_from_sequence(images[:1], labels[0], tracks)
    images[1] = np.zeros((10, 10))
    with pytest.raises(CellsegError, match="frame 1"):
        items_from_sequence(images, labels, tracks)


def test_windows_are_centred_moved_inside_and_padded_when_the_image_is_small():
    assert window_box((50, 50), (32, 32), (100, 100)) == (34, 34)
    assert window_box((3, 97), (32, 32), (100, 100)) == (0, 68)
    assert window_box((10, 10), (32, 32), (20, 40)) == (-6, 0)
    a = np.arange(20 * 40).reshape(20, 40)
    w = cut(a, (-6, 0), (32, 32))
    assert w.shape == (32, 32)
    assert (w[:6] == 0).all() and (w[26:] == 0).all()
    np.testing.assert_array_equal(w[6:26], a[:, :32])


def test_an_unaugmented_crop_holds_the_four_inputs_and_the_daughters():
    images, labels, tracks = dividing_movie()
    item = next(it for it in items_from_sequence(images, labels, tracks) if it.seed == 2)
    config = TrainConfig(architecture="track", tyx=(32, 48)).validate()
    x, y = TrackCropMaker(config, augment=False)(item, np.random.default_rng(0))
    assert x.shape == (4, 32, 48) and y.shape == (2, 32, 48)
    corner = window_box((40, 60), (32, 48), (64, 96))
    assert corner == (24, 36)
    np.testing.assert_array_equal(x[1], cut(labels[0] == 2, corner, (32, 48)))
    np.testing.assert_array_equal(x[3], cut(labels[1] > 0, corner, (32, 48)))
    np.testing.assert_array_equal(y[0], cut(np.isin(labels[1], (3, 4)), corner, (32, 48)))
    assert x[0].max() > x[0].min()  # the normalised image at t
    np.testing.assert_allclose(y[1], tracking_weights(y[0], x[3]))


def test_the_training_crop_jitters_frame_t_by_at_most_the_shift():
    images, labels, tracks = dividing_movie()
    item = next(it for it in items_from_sequence(images, labels, tracks) if it.seed == 1)
    config = TrainConfig(
        architecture="track", tyx=(32, 32), track_shift=3, augment_ops=None
    ).validate()
    maker = TrackCropMaker(config)
    maker.ops = None  # jitter only
    offsets = set()
    for k in range(30):
        x, y = maker(item, np.random.default_rng(k))
        seed_c = np.argwhere(x[1]).mean(0)
        now = np.argwhere(y[0]).mean(0)
        offsets.add(tuple(np.round(now - seed_c - (2, 1)).astype(int)))  # the cell moved (2, 1)
    assert len(offsets) > 5
    assert max(max(abs(a), abs(b)) for a, b in offsets) <= 3


def test_tracking_weights_follow_delta():
    shape = (60, 120)
    track = disc(shape, (30, 20), 6)
    near = disc(shape, (30, 36), 4)  # 6 px from the tracked cell
    far = np.zeros(shape, bool)
    far[2:5, 115:118] = True
    segall = track | near | far
    w = tracking_weights(track, segall)
    assert w[30, 20] == SKELETON_WEIGHT
    edge = w[track & ~disc(shape, (30, 20), 5)]
    assert edge.min() == pytest.approx(1.0)
    assert w[0, 0] == 1.0  # background
    assert w[30, 33] == pytest.approx(63 * (50 - 7) / 50, rel=0.05)
    assert w[far].max() == pytest.approx(63 / 50)  # beyond the halo: clipped at 1 x 63/50
    vanished = tracking_weights(np.zeros(shape, bool), segall)
    np.testing.assert_array_equal(vanished, 1 + 20 * segall)


def test_delta_folders_are_read_by_stem_and_a_missing_partner_is_named(tmp_path):
    from helpers import save

    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        for folder in ("img", "previmg"):
            save(tmp_path / folder / f"{stem}.tif", rng.integers(0, 255, (32, 32), np.uint8))
        for folder in ("seg", "segall", "mot_dau"):
            m = np.zeros((32, 32), np.uint8)
            m[10:20, 10:20] = 255
            save(tmp_path / folder / f"{stem}.png", m)
    items = read_delta_folders(tmp_path)
    assert [it.name for it in items] == ["a", "b"]
    assert items[0].mot_dau.sum() == 100 and items[0].pair.prev_labels.sum() == 100
    (tmp_path / "mot_dau" / "b.png").unlink()
    with pytest.raises(CellsegError, match=r"b is in img/ but not in mot_dau/"):
        read_delta_folders(tmp_path)
    with pytest.raises(CellsegError, match="lacks previmg/, seg/"):
        read_delta_folders(tmp_path / "img")


def test_downscaling_keeps_every_cell_even_a_tiny_one():
    from napari_cellseg.track.samples import rescaled

    labels = np.zeros((200, 200), np.int32)
    labels[disc((200, 200), (60, 60), 30)] = 1
    labels[102:104, 22:24] = 7  # 2 x 2: nearest-neighbour at 1/4 would drop it
    small = rescaled(labels, 0.25, order=0)
    assert small.shape == (50, 50)
    assert set(np.unique(small)) == {0, 1, 7}
    assert (small == 7).sum() == 1
