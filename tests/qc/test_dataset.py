"""QC of dataset folders (file problems become problems, not crashes) and fixed copies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers import save
from napari_cellseg.errors import CellsegError
from napari_cellseg.io.datasets import discover
from napari_cellseg.io.images import read_mask
from napari_cellseg.io.links import read_links
from napari_cellseg.qc import fix_dataset, qc_dataset

SHAPE = (24, 24)


def cells(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Three clean, well separated cells."""
    out = np.zeros(shape, dtype=np.uint16)
    out[2:8, 2:8] = 1
    out[2:8, 14:20] = 2
    out[14:20, 8:14] = 3
    return out


def split(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Label 2 in two parts."""
    out = cells(shape)
    out[14:20, 8:14] = 2
    return out


def image(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)


def by_name(results) -> dict:
    return {report.source: report for _, report in results}


def checks(report) -> list[str]:
    return [p.check for p in report.problems]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """An Omnipose folder with one sample per kind of file problem."""
    root = tmp_path / "data"
    save(root / "good.tif", image())
    save(root / "good_masks.tif", cells())
    save(root / "floaty.tif", image())
    save(root / "floaty_masks.tif", cells().astype(np.float32))
    save(root / "prob.tif", image())
    save(root / "prob_masks.tif", np.linspace(0, 1, 576, dtype=np.float32).reshape(SHAPE))
    save(root / "broken.tif", image())
    (root / "broken_masks.tif").write_bytes(b"II*\x00 this is not a TIFF")
    save(root / "wide.tif", image((24, 30)))
    save(root / "wide_masks.tif", cells())
    save(root / "split.tif", image())
    save(root / "split_masks.tif", split())
    return root


def test_file_problems_are_reported_per_sample_without_stopping_the_run(mixed: Path) -> None:
    reports = by_name(qc_dataset(discover(mixed)))
    assert sorted(reports) == ["broken", "floaty", "good", "prob", "split", "wide"]
    assert checks(reports["good"]) == []
    assert checks(reports["floaty"]) == ["float_mask"]
    assert reports["floaty"].problems[0].fixable
    assert reports["floaty"].n_labels == 3  # checked further: whole numbers
    assert checks(reports["prob"]) == ["float_mask"]
    assert not reports["prob"].problems[0].fixable
    assert "probability map" in reports["prob"].problems[0].message
    assert checks(reports["broken"]) == ["unreadable"]
    assert "broken_masks.tif" in reports["broken"].problems[0].message
    assert checks(reports["wide"]) == ["shape_mismatch"]
    assert checks(reports["split"]) == ["split_label"]
    assert {name for name, r in reports.items() if r.blocking} == {
        "broken",
        "floaty",
        "prob",
        "split",
        "wide",
    }


def test_png_mask_with_id_65535_has_too_many_labels(tmp_path: Path) -> None:
    labels = cells()
    labels[labels == 3] = 65535
    save(tmp_path / "a.png", image().astype(np.uint8))
    save(tmp_path / "a_masks.png", labels)
    (report,) = by_name(qc_dataset(discover(tmp_path))).values()
    assert "too_many_labels" in checks(report)


def test_cells_on_the_border_are_listed_only_when_asked(tmp_path: Path) -> None:
    labels = cells()
    labels[0:6, 20:24] = 4  # cut by the right and top edges
    save(tmp_path / "a.tif", image())
    save(tmp_path / "a_masks.tif", labels)
    dataset = discover(tmp_path)
    assert checks(qc_dataset(dataset)[0][1]) == []
    ((_, report),) = qc_dataset(dataset, border=True)
    assert [(p.check, p.labels) for p in report.problems] == [("border", (4,))]


def test_links_join_split_labels_only_when_asked(tmp_path: Path) -> None:
    labels = split()
    labels[8:14, 14:20] = 3  # label 3 touches both parts of label 2
    labels[14:20, 14:20] = 3
    save(tmp_path / "a.tif", image())
    save(tmp_path / "a_masks.tif", labels)
    (tmp_path / "a_links.txt").write_text("2,3\n")
    dataset = discover(tmp_path)
    assert checks(qc_dataset(dataset)[0][1]) == ["split_label"]
    assert checks(qc_dataset(dataset, links=True)[0][1]) == []


def test_links_to_missing_labels_are_reported(tmp_path: Path) -> None:
    save(tmp_path / "a.tif", image())
    save(tmp_path / "a_masks.tif", cells())
    (tmp_path / "a_links.txt").write_text("1,9\n")
    ((_, report),) = qc_dataset(discover(tmp_path), links=True)
    assert checks(report) == ["unreadable"]
    assert "label 9" in report.problems[0].message


def test_fixed_copy_leaves_a_mask_with_bad_links_as_it_is(tmp_path: Path) -> None:
    save(tmp_path / "d" / "a.tif", image())
    save(tmp_path / "d" / "a_masks.tif", split())
    (tmp_path / "d" / "a_links.txt").write_text("1,9\n")
    summary = fix_dataset(discover(tmp_path / "d"), tmp_path / "out", links=True)
    assert summary.unfixable == ["a"]
    assert digest(tmp_path / "out") == digest(tmp_path / "d")


def test_mask_stack_is_checked_frame_by_frame(tmp_path: Path) -> None:
    save(tmp_path / "a.tif", np.stack([image()] * 2))
    save(tmp_path / "a_masks.tif", np.stack([cells(), split()]))
    reports = by_name(qc_dataset(discover(tmp_path)))
    assert {name: checks(r) for name, r in reports.items()} == {
        "a[0]": [],
        "a[1]": ["split_label"],
    }


def clb_dataset(root: Path) -> Path:
    save(root / "images" / "s.tif", np.stack([image()] * 3))
    save(root / "labels" / "s.tif", np.stack([cells(), split(), cells()]))
    return root


def test_clb_pages_are_checked_and_fixed_page_by_page(tmp_path: Path) -> None:
    root = clb_dataset(tmp_path / "clb")
    dataset = discover(root)
    assert [checks(r) for _, r in qc_dataset(dataset)] == [[], ["split_label"], []]
    summary = fix_dataset(dataset, tmp_path / "out")
    assert summary.changed == ["s#1"]
    fixed = tifffile.imread(tmp_path / "out" / "labels" / "s.tif")
    assert fixed.shape == (3, *SHAPE)
    np.testing.assert_array_equal(fixed[0], cells())
    assert len(np.unique(fixed[1])) == 4  # label 2's second part has its own id
    assert not any(r.blocking for _, r in qc_dataset(discover(tmp_path / "out")))


def test_fixed_copy_keeps_names_and_never_touches_the_originals(mixed: Path) -> None:
    before = digest(mixed)
    out = mixed.parent / "fixed"
    summary = fix_dataset(discover(mixed), out)
    assert digest(mixed) == before
    after = digest(out)
    assert set(after) == set(before)
    for name in ("good.tif", "floaty.tif", "wide.tif", "good_masks.tif"):
        assert after[name] == before[name] or name.endswith("_masks.tif")
    assert after["broken_masks.tif"] == before["broken_masks.tif"]  # copied unchanged
    assert sorted(summary.changed) == ["floaty", "split"]
    assert sorted(summary.unfixable) == ["broken", "prob"]
    assert read_mask(out / "floaty_masks.tif").dtype.kind == "i"
    reports = by_name(qc_dataset(discover(out)))
    assert checks(reports["split"]) == [] and checks(reports["floaty"]) == []


def test_fixed_copy_updates_links_when_asked(tmp_path: Path) -> None:
    labels = cells()
    labels[10, 20] = 4  # a fragment, linked to label 3
    save(tmp_path / "d" / "a.tif", image())
    save(tmp_path / "d" / "a_masks.tif", labels)
    (tmp_path / "d" / "a_links.txt").write_text("3,4\n")
    fix_dataset(discover(tmp_path / "d"), tmp_path / "copied")
    assert (tmp_path / "copied" / "a_links.txt").read_text() == "3,4\n"
    fix_dataset(discover(tmp_path / "d"), tmp_path / "updated", links=True)
    assert read_links(tmp_path / "updated" / "a_links.txt") == set()


def test_fixed_copy_of_a_ctc_sequence_keeps_its_gt_folder(tmp_path: Path) -> None:
    save(tmp_path / "01" / "t000.tif", image())
    save(tmp_path / "01_GT" / "SEG" / "man_seg000.tif", split())
    fix_dataset(discover(tmp_path / "01"), tmp_path / "out")
    assert (tmp_path / "out" / "01" / "t000.tif").is_file()
    fixed = read_mask(tmp_path / "out" / "01_GT" / "SEG" / "man_seg000.tif")
    assert len(np.unique(fixed)) == 4


def test_delta_weight_maps_are_not_copied(tmp_path: Path) -> None:
    save(tmp_path / "d" / "img" / "a.tif", image())
    save(tmp_path / "d" / "seg" / "a.tif", cells())
    save(tmp_path / "d" / "wei" / "a.tif", np.ones(SHAPE, dtype=np.float32))
    summary = fix_dataset(discover(tmp_path / "d"), tmp_path / "out")
    assert not (tmp_path / "out" / "wei").exists()
    assert "make-weights" in summary.notes[0]


@pytest.mark.parametrize("where", ["same", "inside", "not_empty", "file"])
def test_fix_target_must_be_a_new_folder_outside_the_dataset(mixed: Path, where: str) -> None:
    out = {
        "same": mixed,
        "inside": mixed / "fixed",
        "not_empty": mixed.parent / "full",
        "file": mixed.parent / "file.txt",
    }[where]
    if where == "not_empty":
        save(out / "x.tif", image())
    if where == "file":
        out.write_text("x")
    before = digest(mixed)
    with pytest.raises(CellsegError, match="--fix"):
        fix_dataset(discover(mixed), out)
    assert digest(mixed) == before


def test_empty_existing_folder_is_a_valid_target(mixed: Path) -> None:
    out = mixed.parent / "empty"
    out.mkdir()
    assert fix_dataset(discover(mixed), out).written


def test_a_fix_that_fails_half_way_leaves_no_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_cellseg.errors import CellsegError
    from napari_cellseg.qc import dataset as qc_dataset_module

    for name in ("a", "b"):
        save(tmp_path / "d" / f"{name}.tif", image())
        save(tmp_path / "d" / f"{name}_masks.tif", split())
    calls = []

    def failing_write(path, labels):  # noqa: ANN001 - stands in for write_mask
        calls.append(path)
        if len(calls) == 2:
            raise CellsegError(f"{path}: cannot hold these labels")
        return original(path, labels)

    original = qc_dataset_module.write_mask
    monkeypatch.setattr(qc_dataset_module, "write_mask", failing_write)
    with pytest.raises(CellsegError, match="cannot hold"):
        fix_dataset(discover(tmp_path / "d"), tmp_path / "out")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no OUT, no staging folder
