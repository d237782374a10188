"""Tests for napari_cellseg.augment: aligned geometry, seeded randomness, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_cellseg.augment import (
    DELTA_DEFAULT_OPS,
    clb_augment,
    delta_augment,
    intensity_augment,
    load_augment_ops,
    random_warp_crop,
    trim,
)
from napari_cellseg.errors import CellsegError


def blocks(shape: tuple[int, int], size: int = 16) -> np.ndarray:
    """Label matrix of size x size squares with distinct ids; every fifth diagonal is background."""
    yy, xx = np.indices(shape)
    ids = (yy // size) * (shape[1] // size + 1) + xx // size + 1
    ids[(yy // size + xx // size) % 5 == 0] = 0
    return ids.astype(np.int32)


def encoded(labels: np.ndarray) -> np.ndarray:
    """Image whose value encodes the label: label * 10 plus a smooth term in [0.1, 0.9]."""
    yy, xx = np.indices(labels.shape)
    smooth = 0.5 + 0.4 * np.sin(yy / 17.0) * np.cos(xx / 11.0)
    return (labels * 10 + smooth).astype(np.float32)


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return inside.astype(np.int32)


def interior(labels: np.ndarray, width: int = 5) -> np.ndarray:
    """Pixels whose width x width neighbourhood holds one label."""
    return ndi.minimum_filter(labels, width) == ndi.maximum_filter(labels, width)


def decoded_agreement(image: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of interior pixels where floor(image / 10) is the label."""
    keep = interior(labels)
    return float(np.mean(np.floor(image[keep] / 10).astype(int) == labels[keep]))


# --- random_warp_crop ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_warped_crop_keeps_image_labels_and_extras_aligned(seed):
    labels = blocks((300, 260))
    image = encoded(labels)
    img, lab, extras, found = random_warp_crop(
        np.stack([image, image + 1000]),
        labels,
        (96, 128),
        np.random.default_rng(seed),
        extras=[image, labels.astype(np.float32)],
        extras_order=[1, 0],
    )
    assert found
    assert img.shape == (2, 96, 128) and img.dtype == np.float32
    assert lab.shape == (96, 128) and lab.dtype == np.int32
    assert decoded_agreement(img[0], lab) >= 0.98
    assert decoded_agreement(img[1] - 1000, lab) >= 0.98
    assert decoded_agreement(extras[0], lab) >= 0.98
    assert extras[0].dtype == np.float32 and extras[1].dtype == np.float32
    # order 0 extra: the same nearest-neighbour sampling as the labels (before orphan removal)
    assert np.mean(extras[1] == lab) >= 0.99


def test_warp_without_scale_rotation_or_flip_is_an_exact_copy():
    labels = blocks((64, 80))
    image = np.random.default_rng(0).random((2, 64, 80), dtype=np.float32)
    weights = image[0] * 3
    img, lab, (w,), found = random_warp_crop(
        image,
        labels,
        (64, 80),
        np.random.default_rng(1),
        scale_range=(1.0, 1.0),
        rotate=False,
        flip=False,
        extras=[weights],
    )
    assert found
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_array_equal(w, weights)


def test_flips_are_exact_and_all_four_occur():
    labels = blocks((48, 64))
    image = np.random.default_rng(0).random((1, 48, 64), dtype=np.float32)
    seen = set()
    for seed in range(24):
        img, lab, _, _ = random_warp_crop(
            image, labels, (48, 64), np.random.default_rng(seed), scale_range=(1, 1), rotate=False
        )
        for key, axes in {"none": (), "y": (0,), "x": (1,), "yx": (0, 1)}.items():
            if np.array_equal(lab, np.flip(labels, axes) if axes else labels):
                np.testing.assert_array_equal(img[0], np.flip(image[0], axes) if axes else image[0])
                seen.add(key)
                break
        else:
            pytest.fail("the crop is not an exact flip of the input")
    assert seen == {"none", "y", "x", "yx"}


def test_warped_labels_stay_integral_and_a_subset_of_the_input_ids():
    labels = blocks((200, 200), size=9) * 7  # sparse ids: 0, 7, 14, ...
    image = encoded(labels)[None]
    for seed in range(10):
        _, lab, _, _ = random_warp_crop(image, labels, (64, 64), np.random.default_rng(seed))
        assert lab.dtype == np.int32
        assert set(np.unique(lab)) <= set(np.unique(labels))


def test_orphan_pixels_are_removed_from_downscaled_labels():
    labels = blocks((200, 200), size=5)
    labels[::7, :] = 0  # one-pixel-thin lines break up into orphans when downscaled
    image = encoded(labels)[None]
    for seed in range(5):
        _, lab, _, _ = random_warp_crop(
            image, labels, (64, 64), np.random.default_rng(seed), scale_range=(0.5, 0.6)
        )
        p = np.pad(lab, 1, mode="edge")
        same = [p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]
        assert np.any([lab == s for s in same], axis=0).all()


def test_empty_labels_give_found_cells_false_without_raising():
    image = np.random.default_rng(0).random((1, 100, 120), dtype=np.float32)
    labels = np.zeros((100, 120), np.uint16)
    img, lab, extras, found = random_warp_crop(image, labels, (64, 64), np.random.default_rng(0))
    assert found is False
    assert img.shape == (1, 64, 64) and lab.shape == (64, 64) and extras == []
    assert not lab.any()


def test_one_small_cell_in_a_large_image_is_found_by_centring_on_foreground():
    labels = disc((1000, 1000), (830, 140), 10) * 5
    image = encoded(labels)[None]
    found = 0
    for seed in range(20):
        _, lab, _, ok = random_warp_crop(image, labels, (224, 224), np.random.default_rng(seed))
        found += ok
        assert ok == (np.count_nonzero(lab) >= 0.001 * 224 * 224)
    assert found >= 18


def test_crop_with_too_little_foreground_returns_the_best_try():
    labels = disc((500, 500), (250, 250), 3)  # 29 px, below 0.1 % of a 224 x 224 crop
    image = encoded(labels)[None]
    _, lab, _, ok = random_warp_crop(
        image, labels, (224, 224), np.random.default_rng(0), scale_range=(1, 1)
    )
    assert not ok
    assert lab.any()


DISC_AREA = int(disc((40, 40), (20, 20), 10).sum())


def disc_grid() -> np.ndarray:
    """1000 x 1000 labels with discs of radius 10 (314 px) every 40 px, each its own id."""
    yy, xx = np.indices((1000, 1000))
    inside = (yy % 40 - 20) ** 2 + (xx % 40 - 20) ** 2 <= 100
    return np.where(inside, (yy // 40) * 25 + xx // 40 + 1, 0).astype(np.int32)


def disc_area_ratio(labels: np.ndarray) -> float:
    """Median area / 314 of the discs that lie wholly inside a crop."""
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas = np.bincount(labels.ravel())
    areas[edge] = 0
    return float(np.median(areas[areas > 0])) / DISC_AREA


@pytest.mark.parametrize("scale", [0.5, 0.8, 1.5])
def test_fixed_scale_multiplies_disc_area_by_its_square(scale):
    labels = disc_grid()  # large enough that no crop reaches a reflected copy
    image = labels[None].astype(np.float32)
    for seed in range(3):
        _, lab, _, _ = random_warp_crop(
            image, labels, (224, 224), np.random.default_rng(seed), scale_range=(scale, scale)
        )
        assert disc_area_ratio(lab) == pytest.approx(scale**2, rel=0.05)


def test_random_scales_stay_within_the_range_and_rescale_multiplies_them():
    labels = disc_grid()
    image = labels[None].astype(np.float32)
    ratios = [
        disc_area_ratio(random_warp_crop(image, labels, (224, 224), np.random.default_rng(s))[1])
        for s in range(30)
    ]
    assert 0.25 * 0.95 <= min(ratios) < 0.5
    assert 1.5 < max(ratios) <= 2.25 * 1.05
    _, lab, _, _ = random_warp_crop(
        image, labels, (224, 224), np.random.default_rng(0), scale_range=(1, 1), rescale=2.0
    )
    assert disc_area_ratio(lab) == pytest.approx(4.0, rel=0.05)


def test_same_seed_gives_identical_crops():
    labels = blocks((150, 170))
    image = encoded(labels)[None]

    def crop(seed):
        img, lab, extras, _ = random_warp_crop(
            image, labels, (64, 64), np.random.default_rng(seed), extras=[image[0]]
        )
        return intensity_augment(img, np.random.default_rng(seed)), lab, extras[0]

    for a, b in zip(crop(3), crop(3)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(crop(3)[1], crop(4)[1])


def test_many_224_crops_keep_image_and_labels_aligned():
    """30 random warps of a 512x512 field of blocks: every crop's image still encodes its labels."""
    labels = blocks((512, 512), size=20)
    image = encoded(labels)[None]
    rng = np.random.default_rng(0)
    for _ in range(30):
        img, lab, _, _ = random_warp_crop(image, labels, (224, 224), rng)
        assert img.shape == (1, 224, 224) and lab.shape == (224, 224) and (lab > 0).any()
        assert decoded_agreement(img[0], lab) >= 0.98
        out = intensity_augment(img, rng)
        assert out.shape == img.shape and np.isfinite(out).all()


# --- intensity_augment --------------------------------------------------------------------


def test_intensity_augment_keeps_shape_range_and_input():
    rng = np.random.default_rng(0)
    image = rng.random((2, 64, 64), dtype=np.float32) * np.float32([[[1.0]], [[3.0]]])
    image[1, 0, 0] = -0.5
    original = image.copy()
    for seed in range(20):
        out = intensity_augment(image, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.float32
        for c in range(2):
            assert image[c].min() - 1e-5 <= out[c].min() and out[c].max() <= image[c].max() + 1e-5
        assert not np.allclose(out, image)
    np.testing.assert_array_equal(image, original)


def test_intensity_augment_leaves_constant_channels_and_accepts_2d():
    image = np.full((1, 32, 32), 0.25, np.float32)
    np.testing.assert_array_equal(intensity_augment(image, np.random.default_rng(0)), image)
    flat = np.random.default_rng(1).random((32, 40), dtype=np.float32)
    assert intensity_augment(flat, np.random.default_rng(0)).shape == (32, 40)


# --- DeLTA operations ---------------------------------------------------------------------

GEOMETRY_OPS = {
    "rotation": 20,
    "zoom": 0.2,
    "shiftX": 0.05,
    "shiftY": 0.05,
    "horizontal_flip": True,
    "vertical_flip": True,
    "rotations_90d": True,
    "elastic_deformation": {"sigma": 4, "points": 4},
}


@pytest.mark.parametrize("seed", range(6))
def test_delta_augment_applies_the_same_geometry_to_image_mask_and_weights(seed):
    labels = blocks((120, 96), size=14)
    image = encoded(labels)
    img, mask, weights = delta_augment(
        [image, labels, image.copy()], GEOMETRY_OPS, [1, 0, 1], np.random.default_rng(seed)
    )
    assert mask.dtype == labels.dtype and set(np.unique(mask)) <= set(np.unique(labels))
    assert img.shape == mask.shape == weights.shape
    assert img.shape in {(120, 96), (96, 120)}
    assert decoded_agreement(img, mask) >= 0.98
    assert decoded_agreement(weights, mask) >= 0.98


def test_delta_rotations_90d_are_exact():
    labels = blocks((40, 56))
    image = encoded(labels)
    seen = set()
    for seed in range(16):
        img, lab = delta_augment(
            [image, labels], {"rotations_90d": True}, [1, 0], np.random.default_rng(seed)
        )
        k = next(k for k in range(4) if np.array_equal(lab, np.rot90(labels, k)))
        np.testing.assert_array_equal(img, np.rot90(image, k))
        seen.add(k)
    assert seen == {0, 1, 2, 3}


def test_delta_intensity_operations_touch_only_arrays_with_order_above_zero():
    labels = blocks((64, 64))
    image = encoded(labels) / 100
    weights = image * 2
    ops = {
        "illumination_voodoo": True,
        "histogram_voodoo": True,
        "gaussian_noise": 0.05,
        "gaussian_blur": 1.5,
    }
    img, lab, w = delta_augment([image, labels, weights], ops, [1, 0, 0], np.random.default_rng(0))
    assert not np.allclose(img, image)
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_array_equal(w, weights)


def test_delta_default_ops_run_and_are_seeded():
    labels = blocks((64, 80))
    image = encoded(labels) / 100

    def run(seed):
        return delta_augment(
            [image, labels], DELTA_DEFAULT_OPS, [1, 0], np.random.default_rng(seed)
        )

    a, b = run(5), run(5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[0].dtype == np.float32 and a[1].dtype == labels.dtype
    assert set(np.unique(a[1])) <= set(np.unique(labels))


def test_load_augment_ops_reads_yaml_and_json(tmp_path: Path):
    yml = tmp_path / "ops.yaml"
    yml.write_text(
        "rotation: 2\nzoom: 0.15\nhorizontal_flip: true\n"
        "elastic_deformation: {sigma: 8, points: 3}\n"
    )
    assert load_augment_ops(yml) == {
        "rotation": 2.0,
        "zoom": 0.15,
        "horizontal_flip": True,
        "elastic_deformation": {"sigma": 8.0, "points": 3},
    }
    js = tmp_path / "ops.json"
    js.write_text(json.dumps(DELTA_DEFAULT_OPS))
    assert load_augment_ops(js) == DELTA_DEFAULT_OPS
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert load_augment_ops(empty) == {}


def test_unknown_operation_names_the_file_and_lists_valid_ones(tmp_path: Path):
    path = tmp_path / "ops.yaml"
    path.write_text("rotation: 2\nshear: 5\n")
    with pytest.raises(CellsegError) as err:
        load_augment_ops(path)
    message = str(err.value)
    assert str(path) in message and "'shear'" in message
    assert "histogram_voodoo" in message and "elastic_deformation" in message


@pytest.mark.parametrize(
    "text",
    [
        "rotation: abc",
        "rotation: -1",
        "horizontal_flip: 3",
        "shiftX: 2",
        "gaussian_noise: true",
        "elastic_deformation: {sigma: -1}",
        "elastic_deformation: {sigma: 5, points: 1.5}",
        "elastic_deformation: {sigma: 5, grid: 3}",
        "- rotation",
        "rotation: [1, 2",
    ],
)
def test_bad_operation_values_raise_cellseg_error(tmp_path: Path, text):
    path = tmp_path / "ops.yaml"
    path.write_text(text)
    with pytest.raises(CellsegError, match="ops.yaml"):
        load_augment_ops(path)


def test_missing_or_malformed_ops_files_raise_cellseg_error(tmp_path: Path):
    with pytest.raises(CellsegError, match="cannot read"):
        load_augment_ops(tmp_path / "absent.yaml")
    bad = tmp_path / "ops.json"
    bad.write_text("{rotation: 2}")
    with pytest.raises(CellsegError, match="not valid JSON"):
        load_augment_ops(bad)


# --- CLB trimming and augmentation -------------------------------------------------------


@pytest.mark.parametrize("method", ["resize", "padding", "reflect"])
@pytest.mark.parametrize("shape", [(200, 150), (300, 280), (256, 256)])
def test_trim_gives_im_dim_squares_and_integral_labels(method, shape):
    labels = blocks(shape, size=12)
    image = encoded(labels)[None]
    img = trim(image, 256, method, order=1)
    lab = trim(labels, 256, method, order=0)
    assert img.shape == (1, 256, 256) and lab.shape == (256, 256)
    assert lab.dtype == labels.dtype
    assert set(np.unique(lab)) <= set(np.unique(labels))
    if method == "resize" and shape != (256, 256):
        assert decoded_agreement(img[0], lab) >= 0.98
    else:  # pixels are copied: the encoding holds exactly outside the zero padding
        assert decoded_agreement(img[0], lab) == 1.0


def test_trim_padding_adds_zeros_and_reflect_mirrors():
    labels = blocks((10, 6), size=3)
    padded = trim(labels, 16, "padding", order=0)
    np.testing.assert_array_equal(padded[3:13, 5:11], labels)
    assert padded[:3].sum() == padded[13:].sum() == padded[:, :5].sum() == 0
    reflected = trim(labels, 16, "reflect", order=0)
    np.testing.assert_array_equal(reflected[3:13, 5:11], labels)
    np.testing.assert_array_equal(reflected[3:13, 4], labels[:, 0])
    np.testing.assert_array_equal(reflected[2, 5:11], labels[0])
    np.testing.assert_array_equal(trim(labels, 4, "reflect", order=0), labels[3:7, 1:5])


def test_unknown_trim_method_raises_cellseg_error():
    with pytest.raises(CellsegError, match="resize, padding, reflect"):
        trim(np.zeros((8, 8)), 16, "stretch", order=1)


def test_clb_augment_yields_the_original_then_aligned_copies():
    labels = blocks((128, 128), size=14)
    image = encoded(labels)[None]
    out = list(clb_augment(image, labels, np.random.default_rng(0), n_augments=6))
    assert len(out) == 7
    np.testing.assert_array_equal(out[0][0], image)
    np.testing.assert_array_equal(out[0][1], labels)
    for img, lab in out[1:]:
        assert img.shape == image.shape and img.dtype == np.float32
        assert lab.shape == labels.shape and lab.dtype == labels.dtype
        assert set(np.unique(lab)) <= set(np.unique(labels))
        assert decoded_agreement(img[0], lab) >= 0.98
    again = list(clb_augment(image, labels, np.random.default_rng(0), n_augments=6))
    for (a, b), (c, d) in zip(out, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
