"""``cellseg qc`` end to end, on real BBBC039 masks and on deliberately broken copies of a
synthetic pair (these need no real data)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg import synth
from napari_cellseg.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["qc", *args])
    out, err = capsys.readouterr()
    return code, out, err


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def contacts(labels: np.ndarray) -> dict[tuple[int, int], int]:
    """Pixel edges between each pair of touching labels (4-neighbours)."""
    found: dict[tuple[int, int], int] = {}
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        touch = (a != b) & (a > 0) & (b > 0)
        for pair in zip(np.minimum(a, b)[touch].tolist(), np.maximum(a, b)[touch].tolist()):
            found[pair] = found.get(pair, 0) + 1
    return found


def carve_seam(labels: np.ndarray, a: int, b: int) -> None:
    """Remove the pixels of ``a`` and ``b`` on their interface: a 2-px background seam."""
    padded = np.pad(labels, 1)
    near = {a: np.zeros(labels.shape, bool), b: np.zeros(labels.shape, bool)}
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        shifted = padded[1 + dy : 1 + dy + labels.shape[0], 1 + dx : 1 + dx + labels.shape[1]]
        near[a] |= shifted == a
        near[b] |= shifted == b
    labels[((labels == a) & near[b]) | ((labels == b) & near[a])] = 0


def problems(report: dict, severity: str | None = None) -> set[tuple[str, tuple[int, ...]]]:
    return {
        (p["check"], tuple(p["labels"]))
        for p in report["problems"]
        if severity is None or p["severity"] == severity
    }


@pytest.fixture(scope="module")
def bbbc039(shared_data: Path) -> Path:
    return shared_data / "bbbc039" / "train"


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> tuple[Path, dict]:
    """A folder of copies of one pair of touching nuclei: clean, binary, 2-px seams, split,
    float (synthetic, so that the tests run without ../shared/data)."""
    image_data, labels = synth.nuclei((256, 256), seed=1, touching=0.5)
    assert sum(n >= 10 for n in contacts(labels).values()) >= 2
    labels = labels.astype(np.uint16)
    root = tmp_path_factory.mktemp("broken") / "data"
    root.mkdir()
    image = root.parent / "source.tif"
    tifffile.imwrite(image, image_data.astype(np.float32))
    variants = {"clean": labels, "binary": (labels > 0).astype(np.uint8)}
    seams = labels.copy()
    carved = sorted(contacts(labels).items(), key=lambda kv: -kv[1])[:2]
    for (a, b), _ in carved:
        carve_seam(seams, a, b)
    variants["seams"] = seams
    # split: the inner cell with the largest id takes the id of an inner cell far away from it
    # (cells cut by the border may be joined outside the image, so they are not used)
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    inner = [int(v) for v in np.unique(labels) if v > 1 and v not in edge]
    moved = max(inner)
    ys, xs = np.nonzero(labels == moved)
    centres = {v: np.argwhere(labels == v).mean(axis=0) for v in inner if v != moved}
    target = max(centres, key=lambda v: np.hypot(*(centres[v] - (ys.mean(), xs.mean()))))
    split = labels.copy()
    split[labels == moved] = target
    variants["split"] = split
    variants["float"] = labels.astype(np.float32)
    for name, mask in variants.items():
        shutil.copyfile(image, root / f"{name}.tif")
        tifffile.imwrite(root / f"{name}_masks.tif", mask, photometric="minisblack")
    expected = {"carved": {pair for pair, _ in carved}, "split": target}
    return root, expected


def test_real_bbbc039_training_set_has_no_blocking_problem(capsys, bbbc039: Path) -> None:
    code, out, _ = run(capsys, str(bbbc039), "--json")
    report = json.loads(out)
    assert code == 0
    assert report["n_masks"] == 100 and report["n_blocking"] == 0 and not report["blocking"]
    severities = {report["severity"][check] for check in report["counts"]}
    assert "blocking" not in severities
    assert all(not m["blocking"] for m in report["masks"])


def test_broken_copies_get_exactly_their_problems(capsys, broken) -> None:
    root, expected = broken
    code, out, _ = run(capsys, str(root), "--json")
    assert code == 1
    masks = {m["name"]: m for m in json.loads(out)["masks"]}
    clean = masks["clean"]
    assert problems(clean, "blocking") == set()

    assert {p[0] for p in problems(masks["binary"], "blocking")} == {"semantic_mask"}

    seams = masks["seams"]
    assert problems(seams, "blocking") == set()
    new = problems(seams) - problems(clean)
    assert new == {("gap", pair) for pair in expected["carved"]}
    assert {p for p in problems(seams) if p[0] != "gap"} == {
        p for p in problems(clean) if p[0] != "gap"
    }

    assert problems(masks["split"], "blocking") == {("split_label", (expected["split"],))}

    floaty = masks["float"]
    assert problems(floaty, "blocking") == {("float_mask", ())}
    assert problems(floaty) - {("float_mask", ())} == problems(clean)


def test_fix_writes_a_clean_copy_and_leaves_the_originals(capsys, broken, monkeypatch) -> None:
    root, expected = broken
    carved = expected["carved"]
    before = digest(root)
    monkeypatch.chdir(root.parent)
    code, out, _ = run(capsys, "data", "--fix", "fixed")
    assert code == 1  # the status describes DIR as given
    assert "fixed copy written to" in out
    assert digest(root) == before
    fixed = root.parent / "fixed"
    assert sorted(digest(fixed)) == sorted(before)
    for image in ("clean.tif", "binary.tif", "split.tif"):
        assert digest(fixed)[image] == before[image]
    code, out, _ = run(capsys, str(fixed.resolve()), "--json")
    assert code == 0
    seams = next(m for m in json.loads(out)["masks"] if m["name"] == "seams")
    assert not {("gap", pair) for pair in carved} & problems(seams)


def test_table_and_verdict_for_people(capsys, broken) -> None:
    root, _ = broken
    code, out, _ = run(capsys, str(root))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["mask", "labels", "block", "warn", "info", "problems"]
    assert any(line.startswith("binary") and "semantic_mask x1" in line for line in lines)
    assert "FAILED: fix the blocking problems before training (exit status 1)" in lines
    assert "\nbinary:\n  [blocking] semantic_mask: this is a binary/semantic mask" in out


def test_max_gap_zero_turns_gaps_off(capsys, broken) -> None:
    root, _ = broken
    _, out, _ = run(capsys, str(root), "--json", "--max_gap", "0", "--min_size", "1")
    counts = json.loads(out)["counts"]
    assert "gap" not in counts and "fragment" not in counts


def test_border_contacts_are_listed_only_with_border(capsys, broken) -> None:
    root, _ = broken
    _, out, _ = run(capsys, str(root), "--json")
    assert "border" not in json.loads(out)["counts"]
    _, out, _ = run(capsys, str(root), "--json", "--border")
    report = json.loads(out)
    assert report["counts"]["border"] > 0 and report["severity"]["border"] == "info"
    _, out, _ = run(capsys, str(root), "--border")
    assert any(line.startswith("clean") and "border x" in line for line in out.splitlines())


def test_blobs_option_decides_what_label_one_is(capsys, tmp_path: Path) -> None:
    labels = np.zeros((40, 40), dtype=np.uint16)
    for y, x in ((2, 2), (30, 2), (2, 30)):
        labels[y : y + 6, x : x + 6] = 1  # label 1 in three parts
    labels[15:20, 15:20] = 2
    labels[25:30, 25:30] = 3
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((40, 40), dtype=np.uint8))
    tifffile.imwrite(tmp_path / "a_masks.tif", labels)
    checks = {}
    for blobs in ("auto", "yes", "no"):
        code, out, _ = run(capsys, str(tmp_path), "--json", "--blobs", blobs)
        checks[blobs] = (code, set(json.loads(out)["counts"]))
    assert checks["auto"] == checks["yes"] == (0, {"blobs_label"})
    assert checks["no"] == (1, {"split_label"})


def test_user_errors_exit_with_status_2(capsys, broken, tmp_path: Path) -> None:
    root, _ = broken
    code, _, err = run(capsys, str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, str(root), "--fix", str(root / "inside"))
    assert code == 2 and "outside the dataset" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _, err = run(capsys, str(root), "--fix", str(tmp_path / "full"))
    assert code == 2 and "not empty" in err
    code, _, err = run(capsys, str(root), "--min_size", "-1")
    assert code == 2
    assert not (root / "inside").exists()
