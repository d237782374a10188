"""Synthetic bacteria and nuclei: exact, reproducible labels and images that look the part."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as connected_label
from skimage.measure import regionprops

from napari_cellseg import synth
from napari_cellseg.io.datasets import discover
from napari_cellseg.io.images import read_image, read_mask
from napari_cellseg.qc import qc_dataset, run_qc
from napari_cellseg.synth.canvas import clean_labels
from napari_cellseg.synth.phase_contrast import _rasterize_rods

GENERATORS = [synth.bacteria, synth.nuclei]
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def samples() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    return {gen.__name__: [gen((256, 256), seed=seed) for seed in SEEDS] for gen in GENERATORS}


def _touching_ids(labels: np.ndarray) -> set[int]:
    """Labels that share a 4-connected interface with another label."""
    ids: set[int] = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        meet = (a > 0) & (b > 0) & (a != b)
        ids |= set(a[meet].tolist()) | set(b[meet].tolist())
    return ids


@pytest.mark.parametrize("generate", GENERATORS)
def test_same_seed_gives_the_same_pair_and_other_seeds_differ(generate) -> None:
    image, labels = generate((96, 128), seed=3)
    again_image, again_labels = generate((96, 128), seed=3)
    other_image, other_labels = generate((96, 128), seed=4)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(image, other_image)
    assert not np.array_equal(labels, other_labels)


@pytest.mark.parametrize("generate", GENERATORS)
def test_a_generator_or_seed_sequence_works_as_seed(generate) -> None:
    from_int = generate((64, 64), seed=np.random.SeedSequence(5))
    from_rng = generate((64, 64), seed=np.random.default_rng(np.random.SeedSequence(5)))
    np.testing.assert_array_equal(from_int[1], from_rng[1])


@pytest.mark.parametrize("kind", ["bacteria", "nuclei"])
def test_arrays_have_the_documented_types_and_shapes(samples, kind) -> None:
    for image, labels in samples[kind]:
        assert image.dtype == np.float32 and image.shape == (256, 256)
        assert labels.dtype == np.int32 and labels.shape == (256, 256)
        assert np.isfinite(image).all() and image.min() >= 0


@pytest.mark.parametrize("kind", ["bacteria", "nuclei"])
def test_labels_are_consecutive_and_each_is_one_4_connected_piece(samples, kind) -> None:
    for _, labels in samples[kind]:
        n = int(labels.max())
        assert n >= 5
        np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
        pieces = connected_label(labels, background=0, connectivity=1)
        assert pieces.max() == n  # one 4-connected piece per label


def test_most_bacteria_touch_a_neighbour_at_a_shared_interface(samples) -> None:
    for _, labels in samples["bacteria"]:
        assert len(_touching_ids(labels)) / labels.max() > 0.6


def test_some_nuclei_touch_and_most_do_not(samples) -> None:
    fractions = [len(_touching_ids(lab)) / lab.max() for _, lab in samples["nuclei"]]
    assert 0.05 < np.mean(fractions) < 0.6


def test_bacteria_are_rods_about_ten_pixels_wide(samples) -> None:
    for _, labels in samples["bacteria"]:
        props = [p for p in regionprops(labels) if p.area > 40]
        major = np.array([p.axis_major_length for p in props])
        minor = np.array([p.axis_minor_length for p in props])
        assert np.mean(major / minor) > 2.0
        assert 6.0 < np.median(minor) < 15.0


def test_bacteria_are_darker_than_the_halo_around_them(samples) -> None:
    for image, labels in samples["bacteria"]:
        cells = labels > 0
        ring = ndi.binary_dilation(cells, iterations=3) & ~cells
        background = ~ndi.binary_dilation(cells, iterations=10)
        assert image[cells].mean() < 0.85 * image[ring].mean()
        assert image[ring].mean() > 1.1 * image[background].mean()


def test_nuclei_are_bright_on_a_dark_background_and_about_30_px_across(samples) -> None:
    for image, labels in samples["nuclei"]:
        background = ~ndi.binary_dilation(labels > 0, iterations=5)
        assert image[labels > 0].mean() > 2.5 * image[background].mean()
        diameters = [p.equivalent_diameter_area for p in regionprops(labels) if p.area > 100]
        assert 20.0 < np.median(diameters) < 40.0


def _outside(xx: np.ndarray, yy: np.ndarray, cy: float) -> np.ndarray:
    """Distance outside the outline of a horizontal rod (radius 5, half length 10, x = 30)."""
    return np.hypot(np.maximum(np.abs(xx - 30) - 10, 0), yy - cy) - 5


def test_overlapping_rods_split_at_their_interface_and_cover_their_union() -> None:
    # Two horizontal rods whose sides overlap by 2 px.
    cells = np.array([[30.0, 20.0, 0.0, 10.0, 5.0, 0.0], [30.0, 28.0, 0.0, 10.0, 5.0, 0.0]])
    labels, depth, _ = _rasterize_rods((50, 60), cells)
    yy, xx = np.mgrid[0:50, 0:60].astype(float)
    out = [_outside(xx, yy, 20.0), _outside(xx, yy, 28.0)]
    assert (labels[out[0] < 0] > 0).all() and (labels[out[1] < 0] > 0).all()
    assert (labels[(out[0] < 0) & (out[1] > 0)] == 1).all()
    assert (labels[(out[1] < 0) & (out[0] > 0)] == 2).all()
    assert (labels[yy < 24] <= 1).all() and (labels[yy > 24] != 1).all()
    # Outside both rods, only the notches where the outlines meet are filled.
    extra = (labels > 0) & (out[0] >= 0) & (out[1] >= 0)
    assert (out[0][extra] + out[1][extra] < 3.0).all()
    assert depth.max() == pytest.approx(5.0, abs=0.01)
    assert (depth[labels == 0] == 0).all() and (depth[labels > 0] > 0).all()


def test_rods_a_thin_seam_apart_meet_and_rods_further_apart_do_not() -> None:
    # Outlines 2 px apart (rods at y = 20 and 32), then 6 px apart (y = 20 and 36).
    for far, meet in ((32.0, True), (36.0, False)):
        cells = np.array([[30.0, 20.0, 0.0, 10.0, 5.0, 0.0], [30.0, far, 0.0, 10.0, 5.0, 0.0]])
        labels, _, _ = _rasterize_rods((60, 60), cells)
        column = labels[:, 30]
        assert (column[16:25] == 1).all() and (column[int(far) - 4 : int(far) + 5] == 2).all()
        assert (column[25 : int(far) - 4] > 0).all() == meet
        assert (column[25 : int(far) - 4] == 0).all() != meet


def test_synthetic_labels_pass_qc_without_a_warning(samples) -> None:
    for kind, pairs in samples.items():
        for _, labels in pairs:
            report = run_qc(labels)
            assert report.problems == [], (kind, report.summary())


@pytest.mark.parametrize("kind", ["bacteria", "nuclei"])
@pytest.mark.parametrize(("n", "shape", "seed"), [(24, (256, 256), 0), (4, (384, 384), 10_000)])
def test_the_demo_datasets_pass_qc_without_a_warning(tmp_path, kind, n, shape, seed) -> None:
    # the training and held-out sets `cellseg demo` generates and checks
    synth.make_dataset(tmp_path, kind=kind, n=n, shape=shape, seed=seed)
    results = qc_dataset(discover(tmp_path))
    assert len(results) == n
    found = [p for _, report in results for p in report.problems]
    assert [p.message for p in found if p.severity in ("blocking", "warning")] == []


def test_a_thin_seam_between_drawn_cells_is_closed() -> None:
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[4:16, 3:14] = 5
    labels[4:16, 15:27] = 8  # one background column between them
    labels[2, 20] = 8  # a stray piece
    assert {p.check for p in run_qc(labels).problems} == {"gap", "fragment", "non_consecutive"}
    cleaned = clean_labels(labels)
    assert run_qc(cleaned).problems == []
    # only the seam column is filled (by both neighbours) and the stray piece dropped
    changed = np.argwhere((cleaned > 0) != (labels > 0)).tolist()
    assert changed == [[2, 20]] + [[y, 14] for y in range(4, 16)]
    assert set(cleaned[4:16, 14].tolist()) <= {1, 2}
    np.testing.assert_array_equal(cleaned[4:16, 3:14], 1)
    np.testing.assert_array_equal(cleaned[4:16, 15:27], 2)


def test_fragments_are_dropped_and_labels_renumbered() -> None:
    labels = np.zeros((6, 9), dtype=np.int32)
    labels[0:2, 0:3] = 4  # largest piece of label 4
    labels[4, 0] = 4  # stray pixel of label 4
    labels[3:6, 5:9] = 9
    cleaned = clean_labels(labels)
    assert cleaned[4, 0] == 0
    assert sorted(np.unique(cleaned).tolist()) == [0, 1, 2]
    assert len(np.unique(cleaned[0:2, 0:3])) == 1 and len(np.unique(cleaned[3:6, 5:9])) == 1


@pytest.mark.parametrize("generate", GENERATORS)
def test_tiny_and_odd_shapes_work(generate) -> None:
    for shape in [(1, 1), (7, 5), (64, 200)]:
        image, labels = generate(shape, seed=0)
        assert image.shape == labels.shape == shape
    assert generate((64, 64), seed=0)[1].max() >= 1


@pytest.mark.parametrize("generate", GENERATORS)
def test_an_empty_field_is_allowed(generate) -> None:
    options = {"isolated": 0.0} if generate is synth.bacteria else {}
    image, labels = generate((64, 64), seed=0, density=0.0, **options)
    assert labels.max() == 0 and image.min() > 0


@pytest.mark.parametrize("generate", GENERATORS)
def test_a_bad_shape_is_refused(generate) -> None:
    with pytest.raises(ValueError, match="shape"):
        generate((0, 10))


@pytest.mark.parametrize("kind", ["bacteria", "nuclei"])
def test_make_dataset_writes_readable_omnipose_pairs(tmp_path, kind) -> None:
    pairs = synth.make_dataset(tmp_path / "set", kind=kind, n=3, shape=(48, 64), seed=7)
    assert [(p.name, m.name) for p, m in pairs] == [
        (f"{kind}_{i:03d}.tif", f"{kind}_{i:03d}_masks.tif") for i in range(3)
    ]
    for image_path, mask_path in pairs:
        image, mask = read_image(image_path), read_mask(mask_path)
        assert image.shape == mask.shape == (48, 64)
        assert image.dtype == np.uint16
        np.testing.assert_array_equal(np.unique(mask), np.arange(mask.max() + 1))
    again = synth.make_dataset(tmp_path / "again", kind=kind, n=2, shape=(48, 64), seed=7)
    for (first, first_mask), (second, second_mask) in zip(pairs, again):
        np.testing.assert_array_equal(read_image(first), read_image(second))
        np.testing.assert_array_equal(read_mask(first_mask), read_mask(second_mask))


def test_make_dataset_masks_match_the_generator(tmp_path) -> None:
    (image_path, mask_path), *_ = synth.make_dataset(tmp_path, n=1, shape=(64, 64), seed=2)
    image, labels = synth.bacteria((64, 64), seed=np.random.SeedSequence(2).spawn(1)[0])
    np.testing.assert_array_equal(read_mask(mask_path), labels)
    np.testing.assert_array_equal(read_image(image_path), np.round(image).astype(np.uint16))


def test_make_dataset_refuses_an_unknown_kind(tmp_path) -> None:
    with pytest.raises(ValueError, match="kind"):
        synth.make_dataset(tmp_path, kind="yeast")
    assert not any(tmp_path.iterdir())
