"""Reading, writing and channel layout of images and masks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.images import (
    as_labels,
    frame_layout,
    is_stack,
    iter_frames,
    read_image,
    read_mask,
    read_mask_page,
    read_shape,
    read_tiff_page,
    tiff_page_count,
    to_cyx,
    write_image,
    write_mask,
)

RNG = np.random.default_rng(0)


def labels_2d(high: int = 9, shape: tuple[int, int] = (12, 15)) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int64)
    labels[2:6, 3:9] = 1
    labels[7:11, 1:5] = high
    return labels


# --------------------------------------------------------------------------- round trips


def test_uint16_mask_round_trips_through_deflate_tiff(tmp_path):
    labels = labels_2d(high=300)
    write_mask(tmp_path / "a_masks.tif", labels)
    back = read_mask(tmp_path / "a_masks.tif")
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)
    with tifffile.TiffFile(tmp_path / "a_masks.tif") as tif:
        assert tif.pages[0].dtype == np.uint16
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE


def test_mask_with_more_than_65535_labels_is_stored_as_uint32(tmp_path):
    labels = labels_2d(high=70_000)
    write_mask(tmp_path / "big.tif", labels)
    assert tifffile.imread(tmp_path / "big.tif").dtype == np.uint32
    np.testing.assert_array_equal(read_mask(tmp_path / "big.tif"), labels)


def test_png_mask_round_trips_as_16_bit(tmp_path):
    labels = labels_2d(high=65_535)
    write_mask(tmp_path / "a_masks.png", labels)
    with Image.open(tmp_path / "a_masks.png") as img:
        assert img.mode == "I;16"
    np.testing.assert_array_equal(read_mask(tmp_path / "a_masks.png"), labels)


def test_png_refuses_more_than_65535_labels_and_writes_nothing(tmp_path):
    with pytest.raises(CellsegError, match=r"65535 labels.*\.tif"):
        write_mask(tmp_path / "a_masks.png", labels_2d(high=65_536))
    assert list(tmp_path.iterdir()) == []


def test_mask_stack_round_trips_as_multipage_tiff(tmp_path):
    stack = np.stack([labels_2d(high=k + 2) for k in range(4)])
    write_mask(tmp_path / "stack.tif", stack)
    assert tiff_page_count(tmp_path / "stack.tif") == 4
    np.testing.assert_array_equal(read_mask(tmp_path / "stack.tif"), stack)
    np.testing.assert_array_equal(read_mask_page(tmp_path / "stack.tif", 2), stack[2])


def test_multipage_image_reads_as_stack_and_page_by_page(tmp_path):
    stack = RNG.integers(0, 4000, size=(7, 10, 11), dtype=np.uint16)
    write_image(tmp_path / "movie.tif", stack)
    raw = read_image(tmp_path / "movie.tif")
    assert raw.shape == (7, 10, 11)
    np.testing.assert_array_equal(raw, stack)
    np.testing.assert_array_equal(read_tiff_page(tmp_path / "movie.tif", 3), stack[3])
    assert read_shape(tmp_path / "movie.tif") == (7, 10, 11)
    assert read_shape(tmp_path / "movie.tif", page=0) == (10, 11)


def test_asking_for_a_missing_page_names_the_page_count(tmp_path):
    write_image(tmp_path / "two.tif", np.zeros((2, 5, 5), np.uint8))
    with pytest.raises(CellsegError, match="has 2 pages; page 5"):
        read_tiff_page(tmp_path / "two.tif", 5)


def test_tiff_with_several_images_is_refused_but_readable_page_by_page(tmp_path):
    path = tmp_path / "mixed.tif"
    tifffile.imwrite(path, np.zeros((5, 6), np.uint8))
    tifffile.imwrite(path, np.ones((7, 8), np.uint8), append=True)
    with pytest.raises(CellsegError, match=r"mixed\.tif holds 2 separate images.*page by page"):
        read_image(path)
    assert read_tiff_page(path, 1).shape == (7, 8)


def test_lzw_compressed_tiff_is_read(tmp_path):
    image = RNG.integers(0, 255, size=(20, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t000.tif", image, compression="lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "t000.tif"), image)


def test_float_cyx_image_round_trips_through_tiff(tmp_path):
    image = RNG.random((2, 9, 13), dtype=np.float32)
    write_image(tmp_path / "x.tiff", image)
    np.testing.assert_array_equal(read_image(tmp_path / "x.tiff"), image)


def test_rgb_tiff_is_stored_as_rgb_and_read_channels_last(tmp_path):
    rgb = RNG.integers(0, 255, size=(9, 13, 3), dtype=np.uint8)
    write_image(tmp_path / "rgb.tif", rgb)
    with tifffile.TiffFile(tmp_path / "rgb.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.tif"), rgb)


def test_png_and_jpeg_images_are_read_with_pil(tmp_path):
    grey16 = RNG.integers(0, 60_000, size=(8, 6), dtype=np.uint16)
    rgb = np.full((8, 6, 3), (200, 30, 90), dtype=np.uint8)
    write_image(tmp_path / "g.png", grey16)
    write_image(tmp_path / "c.jpeg", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey16)
    jpeg = read_image(tmp_path / "c.jpeg")
    assert jpeg.shape == (8, 6, 3) and jpeg.dtype == np.uint8
    assert np.abs(jpeg.astype(int) - rgb).max() <= 3
    assert read_shape(tmp_path / "c.jpeg") == (8, 6, 3)


def test_palette_png_is_colour_as_image_and_indices_as_mask(tmp_path):
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.fromarray(indices, mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    img.save(tmp_path / "p_masks.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p_masks.png"), indices)
    colour = read_image(tmp_path / "p_masks.png")
    assert colour.shape == (2, 2, 3)
    np.testing.assert_array_equal(colour[1, 0], (0, 255, 0))


def test_writing_float_tiff_mask_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(CellsegError, match="integer label matrix"):
        write_mask(tmp_path / "m.tif", labels_2d().astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_writing_image_in_a_format_that_cannot_hold_it_is_refused(tmp_path):
    with pytest.raises(CellsegError, match=r"save it as \.tif"):
        write_image(tmp_path / "f.png", np.zeros((4, 4), np.float32))
    with pytest.raises(CellsegError, match="use one of"):
        write_image(tmp_path / "f.bmp", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- atomic writes


def test_failed_mask_write_keeps_the_previous_file(tmp_path):
    write_mask(tmp_path / "m.tif", labels_2d())
    with pytest.raises(CellsegError, match="must be >= 0"):
        write_mask(tmp_path / "m.tif", -labels_2d())
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), labels_2d())
    assert [p.name for p in tmp_path.iterdir()] == ["m.tif"]


# --------------------------------------------------------------------------- bad files


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CellsegError, match=r"nope\.tif does not exist"):
        read_image(tmp_path / "nope.tif")


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(CellsegError, match=r"a\.bmp: unsupported file type \.bmp.*\.png"):
        read_image(tmp_path / "a.bmp")


def test_folder_is_not_an_image(tmp_path):
    (tmp_path / "x.tif").mkdir()
    with pytest.raises(CellsegError, match="is a folder"):
        read_image(tmp_path / "x.tif")


@pytest.mark.parametrize("compression", [None, "zlib", "lzw"])
def test_truncated_tiff_raises_cellseg_error_naming_the_file(tmp_path, compression):
    source = tmp_path / "whole.tif"
    tifffile.imwrite(
        source, RNG.integers(0, 60_000, (64, 64), dtype=np.uint16), compression=compression
    )
    data = source.read_bytes()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CellsegError, match=r"could not read .*cut\.tif.*copy or export it again"):
        read_image(bad)
    with pytest.raises(CellsegError, match=r"cut\.tif"):
        read_mask(bad)


@pytest.mark.parametrize("name", ["noise.tif", "noise.png", "noise.jpg"])
def test_random_bytes_raise_cellseg_error(tmp_path, name):
    (tmp_path / name).write_bytes(RNG.bytes(2000))
    with pytest.raises(CellsegError, match=name.replace(".", r"\.")):
        read_image(tmp_path / name)
    with pytest.raises(CellsegError, match=name.replace(".", r"\.")):
        read_shape(tmp_path / name)


def test_truncated_png_raises_cellseg_error(tmp_path):
    write_image(tmp_path / "whole.png", RNG.integers(0, 255, (64, 64), dtype=np.uint8))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CellsegError, match=r"cut\.png.*damaged"):
        read_image(tmp_path / "cut.png")


# --------------------------------------------------------------------------- masks


def test_float_mask_with_whole_numbers_is_refused_with_conversion_hint(tmp_path):
    tifffile.imwrite(tmp_path / "f_masks.tif", labels_2d().astype(np.float32))
    with pytest.raises(CellsegError) as info:
        read_mask(tmp_path / "f_masks.tif")
    message = str(info.value)
    assert "f_masks.tif" in message and "whole numbers" in message
    assert "np.round(m).astype(np.uint16)" in message


def test_probability_map_is_refused_as_mask(tmp_path):
    tifffile.imwrite(tmp_path / "p_masks.tif", RNG.random((6, 6), dtype=np.float32))
    with pytest.raises(CellsegError, match=r"p_masks\.tif holds non-integer values.*label"):
        read_mask(tmp_path / "p_masks.tif")


def test_negative_labels_are_refused_naming_the_file(tmp_path):
    labels = labels_2d().astype(np.int16)
    labels[0, 0] = -1
    tifffile.imwrite(tmp_path / "n_masks.tif", labels)
    with pytest.raises(CellsegError, match=r"n_masks\.tif: labels must be >= 0.*found -1"):
        read_mask(tmp_path / "n_masks.tif")


def test_rgb_mask_is_refused(tmp_path):
    rgb = RNG.integers(0, 255, (10, 10, 3), dtype=np.uint8)
    write_image(tmp_path / "c_masks.png", rgb)
    with pytest.raises(CellsegError, match=r"c_masks\.png is a colour image.*integer id"):
        read_mask(tmp_path / "c_masks.png")


def test_grey_mask_saved_as_rgb_gets_a_one_channel_hint():
    grey = labels_2d().astype(np.uint8)
    with pytest.raises(CellsegError, match=r"identical.*m\[\.\.\., 0\]"):
        as_labels(np.stack([grey] * 3, axis=-1), source="g.png")


def test_label_dtypes_are_int32_unless_too_large():
    assert as_labels(np.array([[0, 1]], dtype=bool)).dtype == np.int32
    assert as_labels(np.array([[0, 7]], dtype=np.uint8)).dtype == np.int32
    big = as_labels(np.array([[0, 2**31]], dtype=np.uint32))
    assert big.dtype == np.int64 and big.max() == 2**31


# --------------------------------------------------------------------------- channel layout


@pytest.mark.parametrize(
    ("shape", "channel_axis", "expected"),
    [
        ((10, 12), None, (1, 10, 12)),
        ((10, 12, 3), None, (3, 10, 12)),
        ((10, 12, 4), None, (3, 10, 12)),
        ((10, 12, 2), None, (2, 10, 12)),
        ((2, 10, 12), None, (2, 10, 12)),
        ((1, 10, 12), None, (1, 10, 12)),
        ((10, 2, 12), 1, (2, 10, 12)),
        ((10, 12, 6), -1, (6, 10, 12)),
        ((1, 1, 10, 12), None, (1, 10, 12)),
        ((1, 3, 10, 12), 1, (3, 10, 12)),
        ((10, 12), 2, (1, 10, 12)),
    ],
)
def test_to_cyx_moves_channels_first(shape, channel_axis, expected):
    raw = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    cyx = to_cyx(raw, channel_axis=channel_axis)
    assert cyx.shape == expected
    assert cyx.dtype == np.float32 and cyx.flags.c_contiguous
    assert not is_stack(raw, channel_axis)


def test_to_cyx_keeps_each_channel_value():
    rgb = np.zeros((6, 7, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    cyx = to_cyx(rgb)
    assert [float(c.mean()) for c in cyx] == [10.0, 20.0, 30.0]
    yx2 = np.moveaxis(np.stack([np.full((6, 7), 5), np.full((6, 7), 9)]), 0, 1)
    np.testing.assert_array_equal(to_cyx(yx2, channel_axis=1)[:, 0, 0], [5, 9])


def test_rgba_drops_alpha():
    rgba = np.zeros((6, 7, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[..., 2] = 1
    cyx = to_cyx(rgba)
    assert cyx.shape == (3, 6, 7) and cyx.max() == 1


def test_stack_of_frames_is_not_one_image():
    stack = np.zeros((7, 20, 20), dtype=np.uint16)
    assert is_stack(stack)
    with pytest.raises(CellsegError, match="stack of 7 frames.*iter_frames"):
        to_cyx(stack)
    frames = list(iter_frames(stack))
    assert len(frames) == 7 and all(f.shape == (1, 20, 20) for f in frames)


def test_short_stack_is_frames_when_one_channel_is_expected():
    stack = np.stack([np.full((9, 9), k) for k in range(3)])
    assert not is_stack(stack)
    assert is_stack(stack, nchan=1)
    frames = list(iter_frames(stack, nchan=1))
    assert [f[0, 0, 0] for f in frames] == [0, 1, 2]


def test_stack_of_rgb_frames_and_of_channel_first_frames():
    zyxc = RNG.integers(0, 255, (5, 8, 9, 3), dtype=np.uint8)
    frames = list(iter_frames(zyxc))
    assert len(frames) == 5
    np.testing.assert_array_equal(frames[2], np.moveaxis(zyxc[2], -1, 0))
    zcyx = RNG.integers(0, 255, (5, 2, 8, 9), dtype=np.uint8)
    frames = list(iter_frames(zcyx, channel_axis=1))
    assert len(frames) == 5 and frames[4].shape == (2, 8, 9)
    np.testing.assert_array_equal(frames[4], zcyx[4])
    czyx = np.moveaxis(zcyx, 1, 0)
    np.testing.assert_array_equal(list(iter_frames(czyx, channel_axis=0))[4], zcyx[4])


def test_single_image_yields_itself_once():
    frames = list(iter_frames(np.ones((5, 6, 3), np.uint8)))
    assert len(frames) == 1 and frames[0].shape == (3, 5, 6)


def test_channel_count_mismatch_names_found_and_expected():
    with pytest.raises(
        CellsegError, match=r"has 3 channels but 1 is expected.*--channel_axis.*--nchan"
    ):
        to_cyx(np.zeros((10, 12, 3), np.uint8), nchan=1)
    with pytest.raises(CellsegError, match="has 1 channel but 2 are expected"):
        to_cyx(np.zeros((10, 12), np.uint8), nchan=2)
    assert to_cyx(np.zeros((2, 10, 12)), nchan=2).shape == (2, 10, 12)


def test_bad_channel_axis_and_too_many_dimensions_are_user_errors():
    with pytest.raises(CellsegError, match="channel_axis 3 does not exist"):
        to_cyx(np.zeros((4, 5, 6)), channel_axis=3)
    with pytest.raises(CellsegError, match="expected a 2D image"):
        to_cyx(np.zeros((3, 4, 5, 6)))
    with pytest.raises(CellsegError, match="cannot split"):
        list(iter_frames(np.zeros((2, 3, 4, 5, 6))))


# --------------------------------------------------------------------------- import hygiene


def test_io_imports_neither_torch_nor_napari_nor_qt():
    code = (
        "import sys, napari_cellseg.io; "
        "bad = [m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "shape",
    [(20, 30), (3, 20, 30), (20, 30, 3), (5, 20, 30), (1, 1, 20, 30), (7, 3, 20, 30),
     (7, 20, 30, 3), (2, 20, 30), (20, 30, 4), (3, 20, 30, 2)],
)  # fmt: skip
@pytest.mark.parametrize("nchan", [None, 1])
def test_frame_layout_splits_a_shape_as_iter_frames_splits_the_array(shape, nchan):
    try:
        frames = list(iter_frames(np.zeros(shape, np.uint8), None, nchan))
    except CellsegError:
        frames = None
    if frames is None or any(f.shape[0] != (nchan or f.shape[0]) for f in frames):
        return  # a channel-count refusal: iter_frames checks channels, frame_layout does not
    assert frame_layout(shape, None, nchan) == (len(frames), frames[0].shape[1:])


@pytest.mark.parametrize(
    ("shape", "dtype", "photometric"),
    [
        ((20, 30, 3), np.uint8, "RGB"),
        ((20, 30, 4), np.uint16, "RGB"),
        ((20, 30, 3), np.float32, "MINISBLACK"),  # float colour is not RGB to TIFF readers
        ((20, 30, 2), np.uint8, "MINISBLACK"),
        ((5, 20, 30), np.uint16, "MINISBLACK"),
        ((20, 30), np.float32, "MINISBLACK"),
    ],
)
def test_written_tiffs_keep_their_layout_and_tell_readers_what_they_hold(
    tmp_path, shape, dtype, photometric
):
    image = (np.arange(np.prod(shape)) % 200).reshape(shape).astype(dtype)
    write_image(tmp_path / "x.tif", image)
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), image)
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        page = tif.pages[0]
        assert page.photometric.name == photometric
        if len(shape) == 3 and shape[-1] <= 4:
            assert page.planarconfig.name == "CONTIG"  # channels stay interleaved, last


@pytest.mark.parametrize(
    ("shape", "cyx"),
    [
        ((4, 20, 30), (4, 20, 30)),  # four channels first: the most a channel axis holds
        ((5, 20, 30), None),  # five: frames
        ((20, 30, 4), (3, 20, 30)),  # RGBA: the alpha channel is dropped
        ((5, 20, 4), (3, 5, 20)),  # channels last beat a first axis of 5
        ((4, 20, 4), (4, 20, 4)),  # both short: channels first (the Omnipose convention)
    ],
)
def test_the_channel_axis_guess_at_its_boundaries(shape, cyx):
    assert is_stack(np.zeros(shape, np.uint8)) is (cyx is None)
    if cyx is not None:
        assert to_cyx(np.zeros(shape, np.uint8)).shape == cyx


def test_a_short_stack_is_frames_for_a_one_channel_model_and_channels_otherwise():
    arr = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    assert is_stack(arr, nchan=1) and not is_stack(arr) and not is_stack(arr, nchan=2)
    assert not is_stack(np.zeros((1, 6, 7)), nchan=1)


@pytest.mark.parametrize(("layout", "axis"), [("TYXC", 3), ("TCYX", 1), ("CTYX", 0), ("TYXC", -1)])
def test_frames_of_a_4d_stack_follow_its_channel_axis(layout, axis):
    t, c, y, x = 3, 2, 6, 7
    tcyx = np.arange(t * c * y * x, dtype=np.float32).reshape(t, c, y, x)
    order = {"TYXC": (0, 2, 3, 1), "TCYX": (0, 1, 2, 3), "CTYX": (1, 0, 2, 3)}[layout]
    raw = tcyx.transpose(order)
    frames = list(iter_frames(raw, channel_axis=axis, nchan=2))
    assert len(frames) == t
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, tcyx[i])
    with pytest.raises(CellsegError, match="2 channels but 3"):
        list(iter_frames(raw, channel_axis=axis, nchan=3))


def test_frames_of_a_3d_stack_are_checked_against_the_channels_a_model_takes():
    stack = np.zeros((6, 8, 9), np.float32)
    assert [f.shape for f in iter_frames(stack, nchan=1)] == [(1, 8, 9)] * 6
    with pytest.raises(CellsegError, match="1 channel but 2"):
        list(iter_frames(stack, nchan=2))
    with pytest.raises(CellsegError, match="3 channels but 1"):
        list(iter_frames(np.zeros((8, 9, 3), np.uint8), nchan=1))
