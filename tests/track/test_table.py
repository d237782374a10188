"""Lineage tables, napari Tracks data and DeLTA names (napari_cellseg.track.table)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.errors import CellsegError
from napari_cellseg.track.ctc import Track
from napari_cellseg.track.table import (
    LINEAGE_COLUMNS,
    cell_file_name,
    lineage_rows,
    parse_delta_name,
    tracks_layer_data,
    write_lineage_csv,
)

#: A mother (1, a 2 x 8 bar) in frames 0-1 divides into 2 and 3 (2 x 2 squares) in frame 2.
TRACKS = [Track(1, 0, 1, 0), Track(2, 2, 2, 1), Track(3, 2, 2, 1)]


def labels() -> np.ndarray:
    out = np.zeros((3, 10, 12), np.int32)
    out[0, 2:4, 1:9] = 1  # centroid (2.5, 4.5), area 16
    out[1, 4:6, 2:10] = 1  # centroid (4.5, 5.5)
    out[2, 4:6, 1:3] = 2  # centroid (4.5, 1.5), area 4
    out[2, 4:6, 8:10] = 3  # centroid (4.5, 8.5)
    return out


def test_lineage_rows_hold_one_row_per_cell_per_frame():
    rows = lineage_rows(labels(), TRACKS)
    assert [(r["id"], r["frame"]) for r in rows] == [(1, 0), (1, 1), (2, 2), (3, 2)]
    assert [r["mother"] for r in rows] == [0, 0, 1, 1]
    assert [r["daughters"] for r in rows] == ["", "2 3", "", ""]
    assert [r["area"] for r in rows] == [16, 16, 4, 4]
    assert [(r["centroid_y"], r["centroid_x"]) for r in rows] == [
        (2.5, 4.5),
        (4.5, 5.5),
        (4.5, 1.5),
        (4.5, 8.5),
    ]
    # major axis of a 2 x 8 bar: 4 * sqrt(variance of 0..7) = 4 * sqrt(63 / 12)
    assert rows[0]["length"] == pytest.approx(4 * np.sqrt(63 / 12))
    assert rows[2]["length"] == pytest.approx(4 * np.sqrt(1 / 4))
    assert list(rows[0]) == list(LINEAGE_COLUMNS)


def test_lineage_rows_check_the_table():
    with pytest.raises(CellsegError, match="lineage: .*id 3 is in the labels"):
        lineage_rows(labels(), TRACKS[:2])


def test_write_lineage_csv_round_trips(tmp_path):
    rows = lineage_rows(labels(), TRACKS)
    path = write_lineage_csv(tmp_path / "lineage.csv", rows)
    with open(path, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert [r["daughters"] for r in back] == ["", "2 3", "", ""]
    assert [float(r["centroid_x"]) for r in back] == [4.5, 5.5, 1.5, 8.5]
    assert [p.name for p in tmp_path.iterdir()] == ["lineage.csv"]


def test_write_lineage_csv_of_no_rows_is_a_header(tmp_path):
    path = write_lineage_csv(tmp_path / "lineage.csv", [])
    assert path.read_text().strip() == ",".join(LINEAGE_COLUMNS)


def test_tracks_layer_data_is_sorted_by_track_then_time():
    data, graph = tracks_layer_data(labels(), TRACKS)
    expected = [[1, 0, 2.5, 4.5], [1, 1, 4.5, 5.5], [2, 2, 4.5, 1.5], [3, 2, 4.5, 8.5]]
    np.testing.assert_array_equal(data, np.array(expected, float))
    assert data.dtype == float and graph == {2: [1], 3: [1]}


def test_tracks_layer_data_of_an_empty_stack():
    data, graph = tracks_layer_data(np.zeros((2, 4, 4), np.int32), [])
    assert data.shape == (0, 4) and graph == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "Position01_Chamber02_Frame003.tif",
            {"position": 1, "chamber": 2, "frame": 3, "form": "pct"},
        ),
        ("Position7_Frame120.png", {"position": 7, "chamber": None, "frame": 120, "form": "pt"}),
        (
            Path("movie") / "Pos12_Cha3_Fra004.tif",
            {"position": 12, "chamber": 3, "frame": 4, "form": "pct"},
        ),
    ],
)
def test_parse_delta_name(name, expected):
    assert parse_delta_name(name) == expected


@pytest.mark.parametrize("name", ["frame003.tif", "Position01_Frame003", "a1b2c3d4e.tif"])
def test_other_names_are_explained(name):
    with pytest.raises(CellsegError, match="Position<P>_Chamber<C>_Frame<T>"):
        parse_delta_name(name)


def test_cell_file_name_inserts_the_cell_number():
    assert cell_file_name("Position01_Frame003.tif", 4) == "Position01_Frame003Cell000004.tif"
    folder = Path("out") / "Position01_Chamber02_Frame003.png"
    assert cell_file_name(folder, 123456) == str(
        Path("out") / "Position01_Chamber02_Frame003Cell123456.png"
    )
    with pytest.raises(CellsegError, match=">= 0"):
        cell_file_name("Position01_Frame003.tif", -1)
