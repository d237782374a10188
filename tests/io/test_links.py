"""Omnipose ``_links.txt`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.links import links_path_for, read_links, validate_links, write_links


def labels_1_to_9() -> np.ndarray:
    return np.arange(10, dtype=np.int32).reshape(2, 5)


def test_all_separators_comments_and_blank_lines_are_understood(tmp_path):
    path = tmp_path / "a_links.txt"
    path.write_text("# pieces of one worm\n1,2\n3 4\n\n5, 6\n 8\t7  # reversed\n9 ,1\n1,2\n")
    assert read_links(path) == {(1, 2), (3, 4), (5, 6), (7, 8), (1, 9)}


def test_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "a_links.txt"
    path.write_bytes("\ufeff2,3\n".encode())
    assert read_links(path) == {(2, 3)}


def test_empty_file_means_no_links(tmp_path):
    (tmp_path / "a_links.txt").write_text("")
    assert read_links(tmp_path / "a_links.txt", labels=labels_1_to_9()) == set()


@pytest.mark.parametrize("line", ["1,2,3", "1;2", "one,two", "1.0,2", "7"])
def test_malformed_line_names_file_line_and_text(tmp_path, line):
    path = tmp_path / "bad_links.txt"
    path.write_text(f"1,2\n\n{line}\n")
    with pytest.raises(CellsegError) as info:
        read_links(path)
    assert f"bad_links.txt:3: cannot read {line!r}" in str(info.value)


def test_self_link_is_refused_with_its_line(tmp_path):
    path = tmp_path / "a_links.txt"
    path.write_text("1,2\n4,4\n")
    with pytest.raises(CellsegError, match=r"a_links\.txt:2: label 4 is linked to itself"):
        read_links(path)


@pytest.mark.parametrize("line", ["0,3", "-1,3"])
def test_background_and_negative_ids_are_refused(tmp_path, line):
    path = tmp_path / "a_links.txt"
    path.write_text(line)
    with pytest.raises(CellsegError, match=r"a_links\.txt:1: .*label ids are >= 1"):
        read_links(path)


def test_link_to_a_label_missing_from_the_mask_names_the_line_and_id(tmp_path):
    path = tmp_path / "a_links.txt"
    path.write_text("1,2\n3,4\n# note\n5,12\n")
    with pytest.raises(CellsegError, match=r"a_links\.txt:4: link 5,12 refers to label 12"):
        read_links(path, labels=labels_1_to_9())
    assert read_links(path, labels=np.arange(13).reshape(1, 13)) == {(1, 2), (3, 4), (5, 12)}


def test_missing_and_binary_files_are_user_errors(tmp_path):
    with pytest.raises(CellsegError, match="does not exist"):
        read_links(tmp_path / "none_links.txt")
    (tmp_path / "bin_links.txt").write_bytes(bytes(range(128, 256)))
    with pytest.raises(CellsegError, match=r"bin_links\.txt is not a text file"):
        read_links(tmp_path / "bin_links.txt")


def test_validate_links_names_the_source():
    validate_links({(1, 2), (9, 3)}, labels_1_to_9())
    with pytest.raises(CellsegError, match=r"layer worms: link 2,11 refers to label 11"):
        validate_links([(11, 2)], labels_1_to_9(), source="layer worms")
    with pytest.raises(CellsegError, match="linked to itself"):
        validate_links([(3, 3)], labels_1_to_9())


def test_write_links_is_sorted_normalised_and_round_trips(tmp_path):
    path = write_links(tmp_path / "a_links.txt", [(9, 3), (1, 2), (2, 1), (4, 7)])
    assert path.read_text() == "1,2\n3,9\n4,7\n"
    assert read_links(path) == {(1, 2), (3, 9), (4, 7)}
    assert [p.name for p in tmp_path.iterdir()] == ["a_links.txt"]


def test_invalid_links_are_not_written(tmp_path):
    with pytest.raises(CellsegError, match="linked to itself"):
        write_links(tmp_path / "a_links.txt", [(1, 2), (5, 5)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "kwargs", "expected"),
    [
        ("d/A.tif", {}, "d/A_links.txt"),
        ("d/A_masks.png", {}, "d/A_links.txt"),
        ("d/A_img.tif", {"img_filter": "_img"}, "d/A_links.txt"),
        ("d/A_cp.tif", {"mask_filter": "_cp"}, "d/A_links.txt"),
        ("d/_masks.tif", {}, "d/_masks_links.txt"),
    ],
)
def test_links_path_for_strips_the_mask_or_image_suffix(given, kwargs, expected):
    assert links_path_for(given, **kwargs) == Path(expected)
