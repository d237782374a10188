"""Prediction: tiled inference, stacks, reconstruction and the Segmenter's user errors."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import tiny_config
from napari_cellseg import synth
from napari_cellseg.errors import CellsegError
from napari_cellseg.metrics import average_precision, match
from napari_cellseg.predict.segmenter import Segmenter, _compact_dtype
from napari_cellseg.train import train
from napari_cellseg.train.samples import make_items


@pytest.fixture(scope="module")
def dcan_model(tmp_path_factory):
    """A tiny DCAN trained on synthetic nuclei until it finds them (about 3 s on one thread).

    DCAN has no global style vector, so its outputs depend on local context only and tiled
    inference can match untiled inference.
    """
    path = tmp_path_factory.mktemp("model") / "nuclei_dcan.pt"
    config = tiny_config(path, architecture="dcan", n_epochs=20, learning_rate=1e-2)
    pairs = [synth.nuclei((96, 96), seed=i) for i in range(2)]
    items = make_items([p[0] for p in pairs], [p[1] for p in pairs], config, names=["a", "b"])
    for _ in train(config, items):
        pass
    return path


def _frame(seg: Segmenter, shape=(96, 96), seed=7) -> tuple[np.ndarray, np.ndarray]:
    image, truth = synth.nuclei(shape, seed=seed)
    (frame,) = seg.prepare(image)
    return frame, truth


def test_tiled_inference_gives_the_masks_of_untiled_inference(dcan_model):
    tiled = Segmenter.from_file(dcan_model, device="cpu", tile=64, overlap=0.25)
    whole = Segmenter.from_file(dcan_model, device="cpu", tile=256)
    frame, truth = _frame(whole, (200, 200))
    calls: list[tuple[int, int]] = []
    raw_tiled = tiled.network(frame, progress=lambda i, n: calls.append((i, n)))
    out_tiled = tiled.named_outputs(raw_tiled)
    out_whole = whole.named_outputs(whole.network(frame))
    assert calls[-1] == (16, 16)  # 4 x 4 tiles of 64 for 200 pixels
    assert set(out_tiled) == {"object", "contour"}
    for name in out_tiled:
        assert out_tiled[name].shape == (200, 200)
        diff = np.abs(out_tiled[name] - out_whole[name])
        assert diff.mean() < 0.03 and np.percentile(diff, 99) < 0.25, name
    a = tiled.reconstruct(out_tiled)
    b = whole.reconstruct(out_whole)
    assert average_precision(truth, b, [0.5])[0] > 0.6  # the model finds the nuclei
    assert b.max() >= 8
    assert average_precision(b, a, [0.5, 0.75]).min() >= 0.98
    assert match(b, a).mean_matched_iou >= 0.95


def test_tiles_on_the_network_grid_give_the_outputs_of_the_whole_image(dcan_model):
    tiled = Segmenter.from_file(dcan_model, device="cpu", tile=64, overlap=0.25)
    whole = Segmenter.from_file(dcan_model, device="cpu", tile=256)
    frame, _ = _frame(whole, (192, 192))  # a multiple of 16: neither pads the image
    out_tiled = tiled.named_outputs(tiled.network(frame))
    out_whole = whole.named_outputs(whole.network(frame))
    for name in out_tiled:  # 0.015-0.018 with tiles off the grid, 0.002-0.003 on it
        assert np.abs(out_tiled[name] - out_whole[name]).mean() < 0.006, name


def test_an_image_with_other_channels_is_refused_naming_the_model(dcan_model):
    seg = Segmenter.from_file(dcan_model, device="cpu")
    with pytest.raises(CellsegError, match=r"2 channel\(s\) but model nuclei_dcan takes 1"):
        seg.segment(np.zeros((2, 64, 64), np.float32))


def test_a_stack_is_segmented_frame_by_frame(dcan_model):
    seg = Segmenter.from_file(dcan_model, device="cpu")
    images = [synth.nuclei((96, 96), seed=s)[0] for s in (11, 12, 13)]
    results = list(seg.segment_raw(np.stack(images)))
    assert len(results) == 3
    for image, result in zip(images, results):
        assert result.labels.shape == (96, 96) and result.labels.dtype == np.uint16
        (alone,) = seg.segment_raw(image)
        np.testing.assert_array_equal(result.labels, alone.labels)
    assert all(r.labels.max() > 0 for r in results)
    assert not np.array_equal(results[0].labels, results[1].labels)


def test_labels_are_uint16_unless_there_are_more_than_65535_objects():
    small = _compact_dtype(np.array([[0, 65535]], np.int32))
    assert small.dtype == np.uint16 and small.max() == 65535
    large = _compact_dtype(np.array([[0, 70000]], np.int64))
    assert large.dtype == np.uint32 and large.max() == 70000
    assert _compact_dtype(np.zeros((0, 0), np.int32)).dtype == np.uint16


def test_reconstruct_with_other_parameters_does_not_rerun_the_network(dcan_model):
    seg = Segmenter.from_file(dcan_model, device="cpu")
    frame, _ = _frame(seg)
    forwards = []
    seg.model.register_forward_hook(lambda *_: forwards.append(1))
    result = seg.segment(frame)
    assert len(forwards) == 1 and result.labels.dtype == np.uint16
    n = int(result.labels.max())
    assert n > 0
    np.testing.assert_array_equal(seg.reconstruct(result.outputs), result.labels)
    strict = seg.reconstruct(result.outputs, threshold=0.95)
    assert not np.array_equal(strict, result.labels)
    assert np.count_nonzero(strict) < np.count_nonzero(result.labels)
    assert seg.reconstruct(result.outputs, min_size=10**6).max() == 0
    assert len(forwards) == 1


def test_an_unknown_reconstruction_parameter_is_refused(dcan_model):
    seg = Segmenter.from_file(dcan_model, device="cpu")
    frame, _ = _frame(seg, (64, 64))
    outputs = seg.segment(frame).outputs
    with pytest.raises(CellsegError, match="flow_threshold do.*not apply to dcan models"):
        seg.reconstruct(outputs, flow_threshold=0.4)
    with pytest.raises(CellsegError, match="bogus"):
        seg.segment(frame, bogus=1)


def test_channel_axis_applies_to_one_call_only(dcan_model):
    seg = Segmenter.from_file(dcan_model, device="cpu")
    stack = np.random.default_rng(0).random((3, 48, 64)).astype(np.float32)
    assert seg.channels.channel_axis is None
    (as_channels,) = seg.prepare(stack, channel_axis=0)  # one image, channels averaged
    assert as_channels.shape == (1, 48, 64)
    assert seg.channels.channel_axis is None
    frames = seg.prepare(stack)  # a short grey stack again
    assert [f.shape for f in frames] == [(1, 48, 64)] * 3


def test_a_diameter_resizes_the_image_to_the_models_diameter_and_back(dcan_model):
    seg = Segmenter.from_file(dcan_model, device="cpu")
    seg.meta["diameter"] = 30.0
    frame, _ = _frame(seg, (96, 80))
    sizes: list[tuple[int, ...]] = []
    seg.model.register_forward_pre_hook(lambda _m, args: sizes.append(tuple(args[0].shape[2:])))
    plain = seg.named_outputs(seg.network(frame))
    seg.diameter = 15.0  # cells half the size the model knows: the network sees them doubled
    assert seg.scale == 2.0
    doubled = seg.named_outputs(seg.network(frame))
    assert sizes == [(96, 80), (192, 160)]
    assert doubled["object"].shape == plain["object"].shape == (96, 80)
    seg.diameter = -1.0
    with pytest.raises(CellsegError, match="diameter"):
        seg.network(frame)


# ------------------------------------------------------------------ values of the helpers


def test_sigmoid_is_the_logistic_function_in_float32():
    from napari_cellseg.families.base import sigmoid as _sigmoid

    x = np.linspace(-30, 30, 121, dtype=np.float32)
    got = _sigmoid(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-x.astype(np.float64))), atol=1e-6)


def test_resize_is_bilinear_on_pixel_centres_and_antialiased_when_shrinking():
    from napari_cellseg.predict.segmenter import _resize

    ramp = np.array([[[0.0, 1.0]]], np.float32)  # (1, 1, 2)
    np.testing.assert_allclose(_resize(ramp, (1, 4))[0, 0], [0, 0.25, 0.75, 1])
    board = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[None]
    for size in ((16, 64), (64, 16), (16, 16)):  # shrinking either axis averages the pattern
        small = _resize(board, size)
        assert small.shape == (1, *size) and small.dtype == np.float32
        assert np.abs(small - 0.5).max() < 0.05, size


def test_segment_raw_passes_channels_and_reconstruction_parameters_on():
    from napari_cellseg import synth
    from napari_cellseg.predict import Segmenter

    seg = Segmenter.from_file("nuclei", device="cpu")
    image, _ = synth.nuclei((128, 128), seed=4)
    (found,) = seg.segment_raw(image)
    assert found.labels.max() >= 3
    (none,) = seg.segment_raw(image, min_size=128 * 128)
    assert none.labels.max() == 0
    stack = np.stack([image, image, image])
    assert len(list(seg.segment_raw(stack))) == 3  # a one-channel model: three frames
    (merged,) = seg.segment_raw(stack, channel_axis=0)  # one image of three channels
    assert merged.labels.max() == found.labels.max()


def test_score_dataset_scores_each_frame_of_a_stack_against_its_own_mask_frame(tmp_path):
    from napari_cellseg import synth
    from napari_cellseg.io import datasets
    from napari_cellseg.io.images import write_image, write_mask
    from napari_cellseg.predict import Segmenter, score_dataset

    frames = [synth.nuclei((128, 128), seed=s) for s in (4, 5)]
    write_image(tmp_path / "movie.tif", np.stack([f[0] for f in frames]).astype(np.float32))
    truth = np.stack([frames[0][1], np.zeros_like(frames[1][1])])  # frame 1 left unannotated
    write_mask(tmp_path / "movie_masks.tif", truth)
    seen = []
    rows = score_dataset(
        Segmenter.from_file("nuclei", device="cpu"),
        datasets.discover(tmp_path, "omnipose"),
        on_image=lambda sample, i, frame, result, row: seen.append((i, row["name"])),
    )
    assert [r["name"] for r in rows] == ["movie[0]", "movie[1]"] == [n for _, n in seen]
    assert [i for i, _ in seen] == [0, 1]
    assert rows[0]["ap_50"] >= 0.9 and rows[0]["n_gt"] == int(truth[0].max())
    assert rows[1]["n_gt"] == 0 and rows[1]["n_pred"] > 0 and rows[1]["ap_50"] == 0.0
