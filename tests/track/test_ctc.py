"""CTC track tables, label stacks and folders (napari_cellseg.track.ctc)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import (
    Track,
    check_tracks,
    read_tracks,
    relabel_consecutive,
    tracks_from_labels,
    write_tracks,
)
from napari_cellseg.track.folders import (
    CTCSequence,
    frame_digits,
    is_ctc_folder,
    read_sequence,
    write_result,
)

#: A mother (1) in frames 0-1 divides into 2 and 3 (frames 2-3); 4 lives in frames 1-3.
TRACKS = [Track(1, 0, 1, 0), Track(2, 2, 3, 1), Track(3, 2, 3, 1), Track(4, 1, 3, 0)]


def division_labels() -> np.ndarray:
    labels = np.zeros((4, 12, 20), np.int32)
    labels[0:2, 2:6, 4:12] = 1
    labels[2:4, 2:6, 2:6] = 2
    labels[2:4, 2:6, 10:14] = 3
    labels[1:4, 8:11, 15:19] = 4
    return labels


def images_of(labels: np.ndarray) -> np.ndarray:
    return (labels > 0).astype(np.uint8) * 200 + np.arange(len(labels), dtype=np.uint8)[
        :, None, None
    ]


def write_ctc_tree(root: Path, labels: np.ndarray, tracks: list[Track]) -> Path:
    """01/tNNN.tif, 01_GT/TRA (man_trackNNN.tif + man_track.txt); returns the 01 folder."""
    seq, tra = root / "01", root / "01_GT" / "TRA"
    seq.mkdir(parents=True)
    tra.mkdir(parents=True)
    for t, (image, frame) in enumerate(zip(images_of(labels), labels)):
        tifffile.imwrite(seq / f"t{t:03d}.tif", image)
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", frame.astype(np.uint16))
    write_tracks(tra / "man_track.txt", tracks)
    return seq


# --------------------------------------------------------------------------------------------
# track tables


def test_read_tracks_skips_blank_lines_and_takes_tabs(tmp_path):
    path = tmp_path / "man_track.txt"
    path.write_text("1 0 1 0\n\n2\t2\t3\t1\n   \n3 2 3 1\n")
    assert read_tracks(path) == [Track(1, 0, 1, 0), Track(2, 2, 3, 1), Track(3, 2, 3, 1)]


def test_write_tracks_sorts_by_id_and_round_trips(tmp_path):
    path = write_tracks(tmp_path / "res_track.txt", [TRACKS[3], TRACKS[0], TRACKS[2], TRACKS[1]])
    assert path.read_text() == "1 0 1 0\n2 2 3 1\n3 2 3 1\n4 1 3 0\n"
    assert read_tracks(path) == TRACKS
    assert [p.name for p in tmp_path.iterdir()] == ["res_track.txt"]  # no temporary left


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("1 0 1 0\n2 0 1\n", 2, "expected 4 numbers"),
        ("1 0 1 0\n\n2 0 x 0\n", 3, "not 4 integers"),
        ("1 0 1 0\n2 3 1 0\n", 2, "after its end"),
        ("1 0 1 0\n2 -1 1 0\n", 2, "negative"),
        ("1 0 1 0\n2 0 1 0\n1 2 3 0\n", 3, "repeated"),
        ("1 0 1 0\n2 2 3 7\n", 2, "parent 7"),
        ("0 0 1 0\n", 1, "background"),
    ],
)
def test_malformed_track_lines_name_the_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "man_track.txt"
    path.write_text(text)
    with pytest.raises(CellsegError, match=words) as info:
        read_tracks(path)
    assert f"{path}, line {line}:" in str(info.value)


def test_missing_table_is_an_error(tmp_path):
    with pytest.raises(CellsegError, match="no such track table"):
        read_tracks(tmp_path / "res_track.txt")


def test_write_tracks_refuses_a_bad_table_and_writes_nothing(tmp_path):
    with pytest.raises(CellsegError, match="parent 9"):
        write_tracks(tmp_path / "t.txt", [Track(1, 0, 2, 9)])
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# label stacks


def test_tracks_from_labels_finds_spans_and_parents():
    tracks = tracks_from_labels(division_labels(), {2: 1, 3: 1})
    assert tracks == TRACKS
    assert tracks_from_labels(division_labels())[1] == Track(2, 2, 3, 0)


def test_a_gap_in_a_track_is_an_error_naming_id_and_frame():
    labels = division_labels()
    labels[2][labels[2] == 4] = 0
    with pytest.raises(CellsegError) as info:
        tracks_from_labels(labels)
    assert "labels are not consistent over time: id 4 is missing from frame 2 " in str(info.value)
    assert "(present in frames 1..3)" in str(info.value)


@pytest.mark.parametrize(
    ("parents", "words"),
    [
        ({2: 9}, "parent id 9 of track 2 does not exist"),
        ({9: 1}, "child id 9 is not in the labels"),
        ({4: 1}, "track 4 begins at frame 1 but its parent 1 lasts until frame 1"),
    ],
)
def test_bad_parents_are_errors(parents, words):
    with pytest.raises(CellsegError, match=words):
        tracks_from_labels(division_labels(), parents)


def test_a_2d_array_is_not_a_stack():
    with pytest.raises(CellsegError, match=r"\(T, Y, X\).*labels\[None\]"):
        tracks_from_labels(division_labels()[0])
    with pytest.raises(CellsegError, match="integers"):
        tracks_from_labels(division_labels().astype(float))


def test_check_tracks_accepts_a_consistent_table():
    check_tracks(division_labels(), TRACKS, "toy")  # no exception


@pytest.mark.parametrize(
    ("tracks", "words"),
    [
        (TRACKS[:3], "toy: frame 1: id 4 is in the labels but it is not in the track table"),
        (
            [*TRACKS[:3], Track(4, 1, 2, 0)],
            "toy: frame 3: id 4 is in the labels but its track runs over frames 1..2",
        ),
        (
            [*TRACKS[:3], Track(4, 0, 3, 0)],
            r"toy: frame 0: track 4 \(frames 0..3\) is missing from the labels",
        ),
        ([*TRACKS[:3], Track(4, 1, 5, 0)], "track 4 ends at frame 5 but there are only 4 frames"),
        (
            [Track(1, 0, 1, 0), Track(2, 2, 3, 1), Track(3, 2, 3, 4), Track(4, 1, 3, 0)],
            "track 3 begins at frame 2 but its parent 4 lasts until frame 3",
        ),
        ([*TRACKS[:3], Track(4, 1, 3, 8)], "parent 8 of track 4 is not in the table"),
    ],
)
def test_check_tracks_names_source_frame_and_id(tracks, words):
    with pytest.raises(CellsegError, match=words):
        check_tracks(division_labels(), tracks, "toy")


def test_check_tracks_names_the_frame_file():
    files = [Path(f"mask{t:03d}.tif") for t in range(4)]
    with pytest.raises(CellsegError, match=r"frame 1 \(mask001.tif\): id 4"):
        check_tracks(division_labels(), TRACKS[:3], "toy", frame_files=files)


def test_relabel_consecutive_renumbers_labels_and_parents():
    labels = division_labels() * 10
    tracks = [Track(t.id * 10, t.begin, t.end, t.parent * 10) for t in TRACKS]
    new_labels, new_tracks = relabel_consecutive(labels, tracks)
    assert new_tracks == TRACKS
    np.testing.assert_array_equal(new_labels, division_labels())


# --------------------------------------------------------------------------------------------
# folders


def test_read_sequence_from_the_sequence_folder(tmp_path):
    labels = division_labels()
    seq = write_ctc_tree(tmp_path, labels, TRACKS)
    sequence = read_sequence(seq)
    assert isinstance(sequence, CTCSequence) and sequence.name == "01"
    np.testing.assert_array_equal(sequence.images, images_of(labels))
    np.testing.assert_array_equal(sequence.labels, labels)
    assert sequence.labels.dtype == np.int32
    assert sequence.tracks == TRACKS
    assert [p.name for p in sequence.image_files] == [f"t{t:03d}.tif" for t in range(4)]
    assert [p.name for p in sequence.label_files] == [f"man_track{t:03d}.tif" for t in range(4)]


@pytest.mark.parametrize("where", ["01_GT/TRA", "01_GT"])
def test_read_sequence_from_the_ground_truth_finds_the_images(tmp_path, where):
    labels = division_labels()
    write_ctc_tree(tmp_path, labels, TRACKS)
    sequence = read_sequence(tmp_path / where)
    assert sequence.name == "01" and sequence.tracks == TRACKS
    np.testing.assert_array_equal(sequence.labels, labels)
    np.testing.assert_array_equal(sequence.images, images_of(labels))
    lean = read_sequence(tmp_path / where, images=False)
    assert lean.images is None and len(lean.image_files) == 4


def test_read_sequence_without_ground_truth_has_no_labels(tmp_path):
    seq = write_ctc_tree(tmp_path, division_labels(), TRACKS)
    (tmp_path / "01_GT").rename(tmp_path / "elsewhere")
    sequence = read_sequence(seq)
    assert sequence.labels is None and sequence.tracks is None
    assert sequence.images.shape == (4, 12, 20)
    given = read_sequence(seq, gt=tmp_path / "elsewhere")  # 01_GT-like folder given explicitly
    assert given.tracks == TRACKS


def test_write_result_then_read_it_back(tmp_path):
    labels = division_labels()
    seq = write_ctc_tree(tmp_path, labels, TRACKS)
    written = write_result(tmp_path / "01_RES", labels, TRACKS)
    assert [p.name for p in written] == [f"mask{t:03d}.tif" for t in range(4)] + ["res_track.txt"]
    assert tifffile.imread(written[2]).dtype == np.uint16
    result = read_sequence(tmp_path / "01_RES")
    np.testing.assert_array_equal(result.labels, labels)
    assert result.tracks == TRACKS and result.name == "01"
    assert result.image_files == read_sequence(seq).image_files  # images of the sibling 01
    assert not [p for p in (tmp_path / "01_RES").iterdir() if p.name.startswith(".")]


def test_frames_are_ordered_by_their_number(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for t in range(12):  # t2.tif sorts after t10.tif by name
        tifffile.imwrite(folder / f"t{t}.tif", np.full((4, 6), t, np.uint8))
    sequence = read_sequence(folder)
    assert sequence.images[:, 0, 0].tolist() == list(range(12))


def test_frame_digits_are_3_up_to_1000_frames_then_4():
    assert (frame_digits(1), frame_digits(1000), frame_digits(1001)) == (3, 3, 4)


def test_more_than_1000_frames_get_4_digits(tmp_path):
    labels = np.ones((1001, 1, 2), np.uint16)
    written = write_result(tmp_path / "res", labels, [Track(1, 0, 1000, 0)])
    assert written[0].name == "mask0000.tif" and written[-2].name == "mask1000.tif"


def test_write_result_refuses_existing_files_unless_overwrite(tmp_path):
    labels = division_labels()
    write_result(tmp_path / "res", labels, TRACKS)
    before = (tmp_path / "res" / "mask000.tif").read_bytes()
    with pytest.raises(CellsegError, match="already exist"):
        write_result(tmp_path / "res", labels[:, :, ::-1], TRACKS)
    assert (tmp_path / "res" / "mask000.tif").read_bytes() == before
    write_result(tmp_path / "res", labels[:, :, ::-1], TRACKS, overwrite=True)
    np.testing.assert_array_equal(read_sequence(tmp_path / "res").labels, labels[:, :, ::-1])


def test_write_result_refuses_masks_of_a_longer_result(tmp_path):
    labels = division_labels()
    write_result(tmp_path / "res", labels, TRACKS)
    with pytest.raises(CellsegError, match="mask003.tif"):
        write_result(
            tmp_path / "res",
            labels[:3],
            [Track(1, 0, 1, 0), Track(4, 1, 2, 0), Track(2, 2, 2, 1), Track(3, 2, 2, 1)],
            overwrite=True,
        )


def test_an_invalid_result_writes_nothing(tmp_path):
    with pytest.raises(CellsegError, match="not in the track table"):
        write_result(tmp_path / "res", division_labels(), TRACKS[:3])
    with pytest.raises(CellsegError, match="16-bit"):
        write_result(
            tmp_path / "res",
            division_labels() * 70_000,
            [Track(t.id * 70_000, t.begin, t.end, t.parent * 70_000) for t in TRACKS],
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_frame_is_an_error_naming_it(tmp_path):
    seq = write_ctc_tree(tmp_path, division_labels(), TRACKS)
    (seq / "t002.tif").unlink()
    with pytest.raises(CellsegError, match=r"frame 2 is missing.*numbered 0..N-1"):
        read_sequence(seq)


def test_frames_of_another_shape_name_the_file(tmp_path):
    seq = write_ctc_tree(tmp_path, division_labels(), TRACKS)
    tifffile.imwrite(seq / "t003.tif", np.zeros((5, 5), np.uint8))
    with pytest.raises(CellsegError, match=r"t003.tif has shape \(5, 5\)"):
        read_sequence(seq)


def test_a_stack_in_a_frame_file_is_an_error(tmp_path):
    seq = write_ctc_tree(tmp_path, division_labels(), TRACKS)
    tifffile.imwrite(seq / "t001.tif", np.zeros((6, 12, 20), np.uint8))
    with pytest.raises(CellsegError, match="t001.tif holds an array of shape"):
        read_sequence(seq)


def test_labels_disagreeing_with_the_table_name_the_frame_file(tmp_path):
    labels = division_labels()
    labels[3][labels[3] == 4] = 0
    seq = write_ctc_tree(tmp_path, labels, TRACKS)
    with pytest.raises(CellsegError, match=r"man_track003.tif\): track 4"):
        read_sequence(seq)


def test_image_and_label_counts_must_agree(tmp_path):
    seq = write_ctc_tree(tmp_path, division_labels(), TRACKS)
    tifffile.imwrite(seq / "t004.tif", np.zeros((12, 20), np.uint8))
    with pytest.raises(CellsegError, match="has 5 frames but its labels"):
        read_sequence(seq)


def test_not_a_ctc_folder(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "image.tif").write_bytes(b"")
    with pytest.raises(CellsegError, match="not a Cell Tracking Challenge folder"):
        read_sequence(tmp_path / "other")
    with pytest.raises(CellsegError, match="no such folder"):
        read_sequence(tmp_path / "nope")


def test_is_ctc_folder(tmp_path):
    seq = write_ctc_tree(tmp_path, division_labels(), TRACKS)
    write_result(tmp_path / "01_RES", division_labels(), TRACKS)
    (tmp_path / "empty").mkdir()
    found = [is_ctc_folder(p) for p in (seq, tmp_path / "01_GT", tmp_path / "01_GT" / "TRA")]
    assert found == [True, True, True]
    assert is_ctc_folder(tmp_path / "01_RES")
    assert not is_ctc_folder(tmp_path / "empty")
    assert not is_ctc_folder(tmp_path)
    assert not is_ctc_folder(seq / "t000.tif")


# --------------------------------------------------------------------------------------------
# real data


def test_gowt1_ground_truth_reads_and_is_consistent(shared_data):
    tra = shared_data / "tracking" / "Fluo-N2DH-GOWT1" / "01_GT" / "TRA"
    if not tra.is_dir():
        pytest.skip(f"no GOWT1 tracking ground truth at {tra}")
    sequence = read_sequence(tra, images=False)
    assert sequence.labels.shape == (92, 1024, 1024) and len(sequence.tracks) == 27
    assert sequence.tracks[0] == Track(1, 0, 91, 0)
    by_id = {t.id: t for t in sequence.tracks}
    assert by_id[12] == Track(12, 47, 47, 10) and by_id[18] == Track(18, 21, 91, 16)
    assert len(sequence.image_files) == 92 and sequence.images is None
    parents = {t.id: t.parent for t in sequence.tracks}
    assert tracks_from_labels(sequence.labels, parents) == sorted(sequence.tracks)


def test_write_sequence_round_trips_and_refuses_to_replace(tmp_path):
    from napari_cellseg.track.folders import write_sequence

    labels = division_labels()
    images = images_of(labels)
    seq = write_sequence(tmp_path, images, labels, TRACKS)
    back = read_sequence(seq)
    np.testing.assert_array_equal(back.images, images)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.tracks == sorted(TRACKS)
    with pytest.raises(CellsegError, match="already exist"):
        write_sequence(tmp_path, images, labels, TRACKS)
    with pytest.raises(CellsegError, match="each label frame needs its image"):
        write_sequence(tmp_path / "other", images[:2], labels, TRACKS)
    assert not (tmp_path / "other").exists()
