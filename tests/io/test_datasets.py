"""Dataset discovery for the Omnipose, DeLTA, CLB and Cell Tracking Challenge layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from helpers import save
from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets import (
    Sample,
    check_shapes,
    detect_convention,
    discover,
    load_image,
    load_links,
    load_mask,
    load_sample,
    load_weights,
    pair_problem,
)

SHAPE = (8, 10)


def image(value: int = 7, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint16)


def labels(n: int = 3, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint16)
    for k in range(1, n + 1):
        out[k - 1, : 2 * k] = k
    return out


def names(dataset) -> list[str]:
    return [s.name for s in dataset.samples]


# --------------------------------------------------------------------------- omnipose


def test_omnipose_pairs_masks_and_links_and_skips_model_outputs(tmp_path):
    save(tmp_path / "A.tif", image(1))
    save(tmp_path / "A_masks.tif", labels())
    save(tmp_path / "B.png", image(2).astype(np.uint8))
    save(tmp_path / "B_masks.png", labels(2))
    (tmp_path / "B_links.txt").write_text("1,2\n")
    save(tmp_path / "B_flows.tif", image())
    save(tmp_path / "B_cp_masks.png", labels())
    dataset = discover(tmp_path)
    assert dataset.convention == "omnipose"
    assert dataset.samples == [
        Sample("A", tmp_path / "A.tif", tmp_path / "A_masks.tif"),
        Sample("B", tmp_path / "B.png", tmp_path / "B_masks.png", links=tmp_path / "B_links.txt"),
    ]
    assert any(
        "ignored 2 files named like model outputs: B_cp_masks.png, B_flows.tif" in w
        for w in dataset.warnings
    )
    assert load_links(dataset.samples[1]) == {(1, 2)}
    assert load_links(dataset.samples[0]) == set()
    assert load_image(dataset.samples[1]).max() == 2
    np.testing.assert_array_equal(load_mask(dataset.samples[0]), labels())


def test_samples_are_in_natural_order(tmp_path):
    for k in (10, 2, 1):
        save(tmp_path / f"img{k}.tif", image())
        save(tmp_path / f"img{k}_masks.tif", labels())
    assert names(discover(tmp_path)) == ["img1", "img2", "img10"]


def test_tiff_mask_is_preferred_over_png(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "A_masks.png", labels(1))
    save(tmp_path / "A_masks.tif", labels(2))
    dataset = discover(tmp_path)
    assert dataset.samples[0].mask == tmp_path / "A_masks.tif"
    assert any("ignored A_masks.png" in w for w in dataset.warnings)


def test_img_and_mask_filters(tmp_path):
    save(tmp_path / "A_img.tif", image())
    save(tmp_path / "A_gt.tif", labels())
    save(tmp_path / "A_other.tif", image())
    (tmp_path / "A_links.txt").write_text("1,3\n")
    dataset = discover(tmp_path, img_filter="_img", mask_filter="_gt")
    assert dataset.samples == [
        Sample("A", tmp_path / "A_img.tif", tmp_path / "A_gt.tif", links=tmp_path / "A_links.txt")
    ]
    assert any("not ending in '_img'" in w and "A_other.tif" in w for w in dataset.warnings)


def test_images_without_masks_are_listed_with_masks_without_images(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "A_mask.tif", labels())
    save(tmp_path / "B.tif", image())
    save(tmp_path / "C_masks.tif", labels())
    with pytest.raises(CellsegError) as info:
        discover(tmp_path)
    message = str(info.value)
    assert "3 images" in message and "A.tif, A_mask.tif, B.tif" in message
    assert "Masks without an image: C_masks.tif" in message
    assert "--mask_filter" in message


def test_long_lists_are_cut_after_ten(tmp_path):
    for k in range(13):
        save(tmp_path / f"x{k:02d}.tif", image())
    with pytest.raises(CellsegError, match=r"x09\.tif \.\.\. and 3 more"):
        discover(tmp_path)


def test_prediction_folder_keeps_images_without_masks(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "B.tif", image())
    save(tmp_path / "B_masks.tif", labels())
    dataset = discover(tmp_path, require_masks=False)
    assert [(s.name, s.mask) for s in dataset.samples] == [
        ("A", None),
        ("B", tmp_path / "B_masks.tif"),
    ]
    assert load_sample(dataset.samples[0])[1:] == (None, set())


def test_extra_channel_files_beside_paired_images_are_a_warning(tmp_path):
    save(tmp_path / "ds_01.tif", image())
    save(tmp_path / "ds_01_masks.tif", labels())
    save(tmp_path / "ds_01_fluor.tif", image())
    dataset = discover(tmp_path)
    assert names(dataset) == ["ds_01"]
    assert any("extra channel" in w and "ds_01_fluor.tif" in w for w in dataset.warnings)


def test_masks_without_images_are_a_warning(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "A_masks.tif", labels())
    save(tmp_path / "Z_masks.tif", labels())
    assert discover(tmp_path).warnings == ["1 mask without an image (ignored): Z_masks.tif"]


def test_jpeg_masks_are_not_used(tmp_path):
    save(tmp_path / "A.tif", image())
    Image.fromarray(labels().astype(np.uint8)).save(tmp_path / "A_masks.jpg")
    with pytest.raises(CellsegError, match=r"A\.tif"):
        discover(tmp_path)
    dataset = discover(tmp_path, require_masks=False)
    assert any("JPEG mask" in w for w in dataset.warnings)


def test_one_level_down_prefixes_the_subfolder(tmp_path):
    for sub in ("set1", "set2"):
        save(tmp_path / sub / "A.tif", image())
        save(tmp_path / sub / "A_masks.tif", labels())
    save(tmp_path / "R.tif", image())
    save(tmp_path / "R_masks.tif", labels())
    assert names(discover(tmp_path)) == ["R"]
    dataset = discover(tmp_path, look_one_level_down=True)
    assert names(dataset) == ["R", "set1/A", "set2/A"]
    assert dataset.samples[2].mask == tmp_path / "set2" / "A_masks.tif"


def test_same_base_with_two_extensions_is_ambiguous(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "A.png", image())
    save(tmp_path / "A_masks.tif", labels())
    with pytest.raises(CellsegError, match=r"A\.png and A\.tif"):
        discover(tmp_path)


def test_empty_folder_explains_every_layout(tmp_path):
    with pytest.raises(CellsegError) as info:
        discover(tmp_path)
    message = str(info.value)
    assert f"no images found in {tmp_path}" in message
    for layout in ("(Omnipose)", "img/ + seg/", "images/ + labels/", "man_segNNN.tif"):
        assert layout in message


def test_empty_prediction_folder_says_which_images_it_looks_for(tmp_path):
    with pytest.raises(CellsegError) as info:
        discover(tmp_path, require_masks=False)
    message = str(info.value)
    assert (
        message == f"no images found in {tmp_path}: looked for .tif, .tiff, .png, .jpg, .jpeg files"
    )


def test_prediction_folder_names_the_files_it_left_out(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "B_masks.tif", labels())
    save(tmp_path / "C_flows.tif", image())
    (tmp_path / "set1").mkdir()
    with pytest.raises(CellsegError) as info:
        discover(tmp_path, img_filter="_img", require_masks=False)
    message = str(info.value)
    assert "looked for .tif, .tiff, .png, .jpg, .jpeg files with names ending in '_img'" in message
    assert "1 file not ending in '_img' left out: A.tif" in message
    assert "1 file named like masks (*_masks) left out: B_masks.tif" in message
    assert "1 file named like model outputs" in message and "C_flows.tif" in message
    assert "subfolders (set1)" in message and "--look_one_level_down" in message
    for training_only in ("needs its image", "(Omnipose)", "img/ + seg/"):
        assert training_only not in message


def test_empty_delta_prediction_folder_does_not_ask_for_masks(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "seg").mkdir()
    with pytest.raises(CellsegError) as info:
        discover(tmp_path, require_masks=False)
    assert str(info.value).endswith("looked for .tif, .tiff, .png, .jpg, .jpeg files")


def test_only_masks_is_reported(tmp_path):
    save(tmp_path / "A_masks.tif", labels())
    with pytest.raises(CellsegError, match=r"found masks \(A_masks\.tif\) but no images"):
        discover(tmp_path)


def test_missing_path_file_path_and_unknown_convention(tmp_path):
    with pytest.raises(CellsegError, match="does not exist"):
        discover(tmp_path / "nowhere")
    with pytest.raises(CellsegError, match="is a file"):
        discover(save(tmp_path / "A.tif", image()))
    with pytest.raises(CellsegError, match="unknown dataset convention 'cellpose'"):
        discover(tmp_path, "cellpose")


def test_relative_path_is_resolved(tmp_path, monkeypatch):
    save(tmp_path / "data" / "A.tif", image())
    save(tmp_path / "data" / "A_masks.tif", labels())
    monkeypatch.chdir(tmp_path)
    dataset = discover("data")
    assert dataset.root == tmp_path.resolve() / "data"
    assert dataset.samples[0].image.is_absolute()


def test_shape_mismatch_is_found_from_headers_and_on_load(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "A_masks.tif", labels())
    save(tmp_path / "B.tif", image(shape=(8, 12)))
    save(tmp_path / "B_masks.tif", labels())
    dataset = discover(tmp_path)
    with pytest.raises(CellsegError, match=r"1 sample .* B \(image \(8, 12\), mask \(8, 10\)\)"):
        check_shapes(dataset)
    load_sample(dataset.samples[0])
    expected = r"sample B: image .*B\.tif and mask .*B_masks\.tif do not fit: the mask has shape"
    with pytest.raises(
        CellsegError, match=expected + r" \(8, 10\) but its image has shape \(8, 12\)"
    ):
        load_sample(dataset.samples[1])


@pytest.mark.parametrize(
    ("mask_shape", "advice"),
    [
        (
            (40, 60),
            "the mask is larger: if the image is a crop of the annotated field, crop the mask",
        ),
        ((40, 50), "the mask is larger"),
        ((20, 30), "the mask is smaller: if it annotates a crop of the image, crop the image"),
        ((50, 30), "its axes look swapped: transpose the mask"),
        ((20, 60), "pair the right files (the mask is taller and narrower"),
    ],
)
def test_size_mismatch_advice_depends_on_which_is_larger(mask_shape, advice):
    message = pair_problem((30, 50), mask_shape)
    assert f"the mask has shape {mask_shape} but its image has shape (30, 50)" in message
    assert advice in message
    if mask_shape[0] < 30 or mask_shape[1] < 50:
        assert "crop the mask" not in message


def test_channel_layouts_match_their_mask(tmp_path):
    save(tmp_path / "rgb.tif", image(shape=(*SHAPE, 3)).astype(np.uint8))
    save(tmp_path / "rgb_masks.tif", labels())
    save(tmp_path / "cyx.tif", image(shape=(2, *SHAPE)))
    save(tmp_path / "cyx_masks.png", labels())
    dataset = discover(tmp_path)
    check_shapes(dataset)
    assert [load_sample(s)[0].shape for s in dataset.samples] == [(2, *SHAPE), (*SHAPE, 3)]


def test_links_naming_missing_labels_fail_on_load(tmp_path):
    save(tmp_path / "A.tif", image())
    save(tmp_path / "A_masks.tif", labels(3))
    (tmp_path / "A_links.txt").write_text("1,2\n2,5\n")
    (sample,) = discover(tmp_path).samples
    with pytest.raises(CellsegError, match=r"A_links\.txt:2: link 2,5 refers to label 5"):
        load_sample(sample)


def test_sample_without_mask_cannot_load_one(tmp_path):
    with pytest.raises(CellsegError, match="sample X .* has no mask"):
        load_mask(Sample("X", tmp_path / "X.tif", None))


# --------------------------------------------------------------------------- delta


def binary_seg() -> np.ndarray:
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[1:3, 1:4] = 255
    seg[5:7, 5:9] = 255
    return seg


def test_delta_pairs_by_stem_and_labels_binary_masks(tmp_path):
    save(tmp_path / "img" / "a.png", image().astype(np.uint8))
    save(tmp_path / "img" / "b.tif", image())
    save(tmp_path / "seg" / "a.tif", binary_seg())
    save(tmp_path / "seg" / "b.png", labels(3).astype(np.uint8))
    save(tmp_path / "wei" / "a.tif", np.ones(SHAPE, np.float32) * 2.5)
    dataset = discover(tmp_path)
    assert dataset.convention == "delta"
    a, b = dataset.samples
    assert (a.name, a.mask, a.weights) == (
        "a",
        tmp_path / "seg" / "a.tif",
        tmp_path / "wei" / "a.tif",
    )
    assert b.weights is None
    assert "1 sample without a weight map in wei/ (weights=None): img/b.tif" in dataset.warnings
    a_labels = load_mask(a)
    assert sorted(np.unique(a_labels)) == [0, 1, 2]
    assert a_labels[1, 1] != a_labels[5, 5]
    np.testing.assert_array_equal(load_mask(b), labels(3))
    assert load_weights(a).dtype == np.float32 and load_weights(a).max() == 2.5
    assert load_weights(b) is None
    check_shapes(dataset)


def test_delta_image_without_segmentation_is_an_error(tmp_path):
    save(tmp_path / "img" / "a.tif", image())
    save(tmp_path / "img" / "b.tif", image())
    save(tmp_path / "seg" / "a.tif", binary_seg())
    with pytest.raises(CellsegError, match=r"1 image\(s\) .* no mask .*img/b\.tif"):
        discover(tmp_path)
    assert [s.mask for s in discover(tmp_path, require_masks=False).samples][1] is None


def test_delta_tracking_set_uses_segall_and_says_so(tmp_path):
    for folder in ("img", "previmg", "mot_dau", "wei"):
        save(tmp_path / folder / "f1.tif", image())
    save(tmp_path / "seg" / "f1.tif", binary_seg() // 255)
    save(tmp_path / "segall" / "f1.tif", binary_seg())
    dataset = discover(tmp_path, "delta")
    (sample,) = dataset.samples
    assert sample.mask == tmp_path / "segall" / "f1.tif" and sample.weights is None
    assert any("tracking" in w and "not supported yet" in w for w in dataset.warnings)


def test_wrong_explicit_convention_names_the_missing_folder(tmp_path):
    save(tmp_path / "img" / "a.tif", image())
    with pytest.raises(CellsegError, match="not a DeLTA dataset: it has no seg folder"):
        discover(tmp_path, "delta")
    with pytest.raises(CellsegError, match="no images or labels folder"):
        discover(tmp_path, "clb")


# --------------------------------------------------------------------------- clb


def test_clb_makes_one_sample_per_page(tmp_path):
    pages = np.stack([image(k) for k in range(3)])
    masks = np.stack([labels(k + 1) for k in range(3)])
    save(tmp_path / "images" / "stack.tif", pages)
    save(tmp_path / "labels" / "stack.tif", masks)
    dataset = discover(tmp_path)
    assert dataset.convention == "clb"
    assert names(dataset) == ["stack#0", "stack#1", "stack#2"]
    assert [s.page for s in dataset.samples] == [0, 1, 2]
    np.testing.assert_array_equal(load_image(dataset.samples[2]), pages[2])
    np.testing.assert_array_equal(load_mask(dataset.samples[1]), masks[1])
    check_shapes(dataset)


def test_clb_page_count_mismatch_is_an_error(tmp_path):
    save(tmp_path / "images" / "s.tif", np.stack([image()] * 3))
    save(tmp_path / "labels" / "s.tif", np.stack([labels()] * 2))
    with pytest.raises(CellsegError, match=r"images/s\.tif has 3, labels/s\.tif 2"):
        discover(tmp_path)


# --------------------------------------------------------------------------- ctc


def make_ctc(root: Path, frames: int = 5, seg: tuple[int, ...] = (1, 3)) -> Path:
    (root / "01").mkdir(parents=True)
    for t in range(frames):
        frame = image(t).astype(np.uint8)
        tifffile.imwrite(root / "01" / f"t{t:03d}.tif", frame, compression="lzw")
    for t in seg:
        save(root / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", labels(t))
    save(root / "01_GT" / "TRA" / "man_track000.tif", labels())
    (root / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 4 0\n")
    return root


def test_ctc_takes_only_frames_with_a_segmentation(tmp_path):
    make_ctc(tmp_path)
    dataset = discover(tmp_path)
    assert dataset.convention == "ctc"
    assert names(dataset) == ["01/t001", "01/t003"]
    assert dataset.samples[1].mask == tmp_path / "01_GT" / "SEG" / "man_seg003.tif"
    assert any("sparse" in w and "2 of 5 frames" in w for w in dataset.warnings)
    assert any("TRA" in w and "not used yet" in w for w in dataset.warnings)
    image_, labels_, links = load_sample(dataset.samples[1])
    assert image_.max() == 3 and labels_.max() == 3 and links == set()


@pytest.mark.parametrize("sub", ["", "01", "01_GT"])
def test_ctc_accepts_dataset_sequence_or_gt_folder(tmp_path, sub):
    make_ctc(tmp_path)
    assert detect_convention(tmp_path / sub) == "ctc"
    assert names(discover(tmp_path / sub)) == ["01/t001", "01/t003"]


def test_ctc_prediction_takes_every_frame(tmp_path):
    make_ctc(tmp_path)
    dataset = discover(tmp_path, require_masks=False)
    assert [s.mask is not None for s in dataset.samples] == [False, True, False, True, False]


def test_ctc_without_ground_truth_needs_require_masks_false(tmp_path):
    make_ctc(tmp_path)
    for f in (tmp_path / "01_GT" / "SEG").iterdir():
        f.unlink()
    with pytest.raises(CellsegError, match="no frame .* has a segmentation"):
        discover(tmp_path)
    assert len(discover(tmp_path, require_masks=False)) == 5


def test_ctc_sequence_without_gt_folder_needs_the_explicit_convention(tmp_path):
    make_ctc(tmp_path)
    shutil.rmtree(tmp_path / "01_GT")
    assert detect_convention(tmp_path) == "omnipose"
    dataset = discover(tmp_path / "01", "ctc", require_masks=False)
    assert names(dataset)[:2] == ["01/t000", "01/t001"] and len(dataset) == 5


def test_detect_convention_defaults_to_omnipose(tmp_path):
    assert detect_convention(tmp_path) == "omnipose"
    (tmp_path / "img").mkdir()
    (tmp_path / "seg").mkdir()
    assert detect_convention(tmp_path) == "delta"
