"""Discovery and reading on the real data in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_cellseg.io.datasets import check_shapes, discover, load_image, load_sample
from napari_cellseg.io.images import is_stack, iter_frames, read_image, to_cyx


def test_bbbc039_train_has_100_complete_pairs(shared_data):
    dataset = discover(shared_data / "bbbc039" / "train")
    assert dataset.convention == "omnipose"
    assert len(dataset) == 100 and dataset.warnings == []
    assert all(s.mask is not None and s.mask.name.endswith("_masks.tif") for s in dataset.samples)
    check_shapes(dataset)
    image, labels, links = load_sample(dataset.samples[0])
    assert image.shape == labels.shape == (520, 696)
    assert image.dtype == np.uint16 and labels.dtype == np.int32
    assert labels.max() > 10 and links == set()


def test_ctc_gowt1_reads_lzw_frames_and_sparse_seg_samples(shared_data):
    root = shared_data / "tracking" / "Fluo-N2DH-GOWT1"
    frame = root / "01" / "t000.tif"
    with tifffile.TiffFile(frame) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.LZW
    raw = read_image(frame)
    assert raw.shape == (1024, 1024) and raw.dtype == np.uint8 and raw.max() > 0

    dataset = discover(root)
    assert dataset.convention == "ctc"
    # resolved, as discover() resolves the folder (../shared may be a symbolic link)
    seg_files = sorted(p.resolve() for p in (root / "01_GT" / "SEG").glob("man_seg*.tif"))
    assert len(dataset) == len(seg_files) == 30
    assert [s.mask for s in dataset.samples] == seg_files
    assert all(s.image.name == s.mask.name.replace("man_seg", "t") for s in dataset.samples)
    assert any("sparse" in w for w in dataset.warnings)
    image, labels, _ = load_sample(dataset.samples[0])
    assert image.shape == labels.shape and labels.max() > 0


def test_dsb2018_colour_image_becomes_three_channels(shared_data):
    dataset = discover(shared_data / "dsb2018" / "color")
    assert len(dataset) == 97
    raw = load_image(dataset.samples[0])
    assert raw.ndim == 3 and raw.shape[-1] == 3 and raw.dtype == np.uint8
    cyx = to_cyx(raw, nchan=3)
    assert cyx.shape == (3, *raw.shape[:2])
    np.testing.assert_array_equal(cyx[1], raw[..., 1])


def test_extra_fluorescence_channels_do_not_block_discovery(shared_data):
    dataset = discover(shared_data / "bacteria" / "brightfield_partial")
    assert len(dataset) == 12
    assert any("_fluor.tif" in w for w in dataset.warnings)


def test_unlabelled_time_lapse_is_a_stack_of_frames(shared_data):
    folder = shared_data / "bacteria" / "unlabeled"
    dataset = discover(folder, require_masks=False)
    assert len(dataset) == 6 and all(s.mask is None for s in dataset.samples)
    raw = read_image(folder / "Exemple7_Noisy_time_lapse_Phase_coli.tif")
    assert raw.shape == (7, 470, 470) and is_stack(raw)
    assert [f.shape for f in iter_frames(raw)] == [(1, 470, 470)] * 7
