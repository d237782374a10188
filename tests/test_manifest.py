"""The npe2 manifest: valid, installed from the repo root, every python_name importable."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from npe2 import PluginManifest

REPO = Path(__file__).resolve().parents[1]
MANIFEST = PluginManifest.from_distribution("napari-cellseg")


def test_npe2_validate_with_imports_passes_on_the_installed_plugin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-cellseg", "--imports"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_installed_manifest_is_the_repo_root_napari_yaml() -> None:
    packaged = REPO / "src" / "napari_cellseg" / "napari.yaml"
    assert packaged.is_symlink()
    assert packaged.resolve() == (REPO / "napari.yaml").resolve()
    assert PluginManifest.from_file(REPO / "napari.yaml") == MANIFEST


@pytest.mark.parametrize(
    "python_name", sorted(c.python_name for c in MANIFEST.contributions.commands)
)
def test_every_command_python_name_imports(python_name: str) -> None:
    module, _, qualname = python_name.partition(":")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    assert callable(target)


def test_reader_patterns_are_narrow() -> None:
    patterns = [p for r in MANIFEST.contributions.readers for p in r.filename_patterns]
    assert "*" not in patterns and "*.txt" not in patterns and "*.png" not in patterns


def test_qc_widget_is_in_the_layers_annotate_menu() -> None:
    menus = MANIFEST.contributions.menus
    assert [item.command for item in menus["napari/layers/annotate"]] == [
        "napari-cellseg.qc_widget"
    ]
    widgets = {w.command: w.display_name for w in MANIFEST.contributions.widgets}
    assert widgets["napari-cellseg.qc_widget"] == "Annotation QC"
