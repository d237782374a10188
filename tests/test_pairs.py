"""One rule for an image/mask pair: QC accepts exactly the pairs that training accepts."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellseg.cli import main
from napari_cellseg.config import TrainConfig
from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets import discover, pair_problem
from napari_cellseg.qc import qc_dataset
from napari_cellseg.train.samples import load_items

#: (image shape, mask shape, fits with --nchan 1)
PAIRS = [
    ((32, 40), (32, 40), True),
    ((32, 40, 3), (32, 40), True),  # RGB: one image
    ((3, 32, 40), (3, 32, 40), True),  # three frames, three mask frames
    ((6, 32, 40), (6, 32, 40), True),
    ((32, 40), (3, 32, 40), False),  # one image, three mask frames
    ((3, 32, 40), (32, 40), False),  # three frames for a one-channel model, one mask frame
    ((6, 32, 40), (32, 40), False),
    ((32, 40), (32, 44), False),
    ((32, 40), (40, 32), False),
    ((4, 32, 40), (3, 32, 40), False),
]


def _pair(folder, image_shape, mask_shape):
    folder.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, image_shape, dtype=np.uint8)
    photometric = "rgb" if image_shape[-1] == 3 else "minisblack"
    tifffile.imwrite(folder / "a.tif", image, photometric=photometric)
    mask = np.zeros(mask_shape, np.uint16)
    mask[..., 4:20, 6:22] = 1
    mask[..., 22:30, 24:36] = 2
    tifffile.imwrite(folder / "a_masks.tif", mask, photometric="minisblack")
    return folder


@pytest.mark.parametrize(("image_shape", "mask_shape", "fits"), PAIRS)
def test_qc_blocks_exactly_the_pairs_that_training_refuses(tmp_path, image_shape, mask_shape, fits):
    folder = _pair(tmp_path / "data", image_shape, mask_shape)
    reports = [r for _, r in qc_dataset(discover(folder))]
    mismatch = [p for r in reports for p in r.problems if p.check == "shape_mismatch"]
    assert bool(mismatch) is not fits
    assert all(r.blocking for r in reports) is not fits
    config = TrainConfig(dir=str(folder))
    if fits:
        items = load_items(str(folder), config)
        assert len(items) == (1 if len(mask_shape) == 2 else mask_shape[0])
    else:
        with pytest.raises(CellsegError) as err:
            load_items(str(folder), config)
        assert mismatch[0].message in str(err.value)  # the same words in both places
    assert (pair_problem(image_shape, mask_shape, nchan=1) is None) is fits


def test_qc_and_train_on_the_command_line_agree_on_a_2d_image_with_a_3_frame_mask(tmp_path, capsys):
    folder = _pair(tmp_path / "data", (32, 40), (3, 32, 40))
    assert main(["qc", str(folder)]) == 1
    printed = capsys.readouterr().out
    assert "shape_mismatch" in printed and "(3 frames)" in printed
    argv = ["train", "--dir", str(folder), "--n_epochs", "1", "--model", str(tmp_path / "m.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the mask has shape (3, 32, 40) (3 frames) but its image has shape (32, 40)" in err
    assert not (tmp_path / "m.pt").exists()


def test_channels_named_on_the_command_line_make_a_short_stack_one_image(tmp_path, capsys):
    folder = _pair(tmp_path / "data", (3, 32, 40), (32, 40))
    assert main(["qc", str(folder)]) == 1
    assert "--nchan" in capsys.readouterr().out  # the message says how to read it as channels
    assert main(["qc", str(folder), "--nchan", "3"]) == 0
    assert main(["qc", str(folder), "--nchan", "3", "--channel_axis", "0"]) == 0
