"""Atomic writes, stale temporaries and the refusals that keep a user's files."""

from __future__ import annotations

import os

import pytest

from napari_cellseg.errors import CellsegError
from napari_cellseg.io.outputs import (
    atomic_path,
    refuse_existing,
    refuse_inputs,
    remove_stale_temporaries,
    temporary_path,
)


def test_atomic_path_replaces_the_file_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt" and not tmp.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_into_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(CellsegError, match="does not exist"), atomic_path(tmp_path / "no" / "x"):
        pass


def test_stale_temporaries_of_the_targets_are_removed_and_nothing_else(tmp_path):
    model = tmp_path / "m.pt"
    stale = [
        temporary_path(model),
        temporary_path(tmp_path / "m.yaml"),
        tmp_path / ".m.pt.0123abcd.tmp",  # the suffix-less name of earlier versions
    ]
    kept = [
        temporary_path(tmp_path / "other.pt"),  # another run's file
        tmp_path / ".m.pt.notahexnum.tmp",
        tmp_path / "m.pt.0123abcd.tmp",  # not hidden
        tmp_path / ".m.pt.0123abcd.tmp.bak",
        tmp_path / "m.pt",
    ]
    for p in stale + kept:
        p.write_text("x")
    removed = remove_stale_temporaries([model, tmp_path / "m.yaml", tmp_path / "gone" / "x"])
    assert sorted(removed) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_existing_outputs_are_refused_with_their_count_and_names(tmp_path):
    files = [tmp_path / f"a{i}_masks.tif" for i in range(5)]
    for f in files[:4]:
        f.write_text("precious")
    with pytest.raises(CellsegError) as err:
        refuse_existing(files, what="mask file")
    message = str(err.value)
    assert "4 mask files already exist" in message
    assert str(files[0]) in message and "and 1 more" in message and "--overwrite" in message
    refuse_existing(files, overwrite=True)
    refuse_existing([tmp_path / "new.tif"])


def test_a_folder_where_a_file_would_go_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "x.csv").mkdir()
    with pytest.raises(CellsegError, match="is a folder"):
        refuse_existing([tmp_path / "x.csv"], overwrite=True)


def test_an_output_that_is_an_input_is_refused_through_any_spelling(tmp_path, monkeypatch):
    gt = tmp_path / "gt" / "a_masks.tif"
    gt.parent.mkdir()
    gt.write_text("mask")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CellsegError, match="--csv: .* is an input file"):
        refuse_inputs([os.path.join("gt", "..", "gt", "a_masks.tif")], [gt], "--csv")
    refuse_inputs([tmp_path / "scores.csv"], [gt], "--csv")
