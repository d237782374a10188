"""Import hygiene, each checked in a fresh interpreter.

- The package, the manifest and every module it names (readers, writer, sample data, widgets)
  load without torch; widgets import it inside the functions that need it.
- The core never imports napari, Qt or magicgui (they are blocked and every non-napari module of
  the package must still import).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_manifest_and_every_contribution_module_load_without_torch() -> None:
    _run(
        """
        import importlib, sys
        import napari_cellseg
        import napari_cellseg.io.images, napari_cellseg.io.links, napari_cellseg.io.datasets
        import napari_cellseg.qc, napari_cellseg.synth
        from npe2 import PluginManifest
        manifest = PluginManifest.from_distribution("napari-cellseg")
        for command in manifest.contributions.commands:  # readers, writer, samples, widgets
            importlib.import_module(command.python_name.partition(":")[0])
        heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not heavy, heavy
        """
    )


def test_options_families_and_samples_load_without_torch() -> None:
    """What the widgets build their forms from, and what data-loader workers need."""
    _run(
        """
        import sys
        import napari_cellseg.config, napari_cellseg.families, napari_cellseg.preprocess
        import napari_cellseg.predict, napari_cellseg.predict.config, napari_cellseg.train
        import napari_cellseg.train.samples, napari_cellseg.reconstruction
        from napari_cellseg.families import family_names, get_family
        for name in family_names():
            get_family(name).params()
        heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not heavy, heavy
        """
    )


def test_core_imports_with_napari_qt_and_magicgui_blocked() -> None:
    _run(
        """
        import importlib, pkgutil, sys
        BLOCKED = ("napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")
        for name in BLOCKED:
            sys.modules[name] = None  # makes `import name` raise ImportError
        import napari_cellseg
        for required in ("io", "qc", "synth", "normalize"):
            importlib.import_module(f"napari_cellseg.{required}")
        for info in pkgutil.walk_packages(napari_cellseg.__path__, "napari_cellseg."):
            skip = info.name.startswith("napari_cellseg.napari") or info.name.endswith("__main__")
            if not skip:  # (importing __main__ would run the CLI)
                importlib.import_module(info.name)
        """
    )


def test_the_import_linter_contracts_of_pyproject_hold() -> None:
    """The layers (core < cli < napari plugin) as declared in pyproject.toml [tool.importlinter]."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_every_core_module_is_held_by_the_core_contract() -> None:
    """A new core module (a family, a runtime helper) cannot slip past the layer contract."""
    import pkgutil
    import tomllib
    from pathlib import Path

    import napari_cellseg

    root = Path(__file__).resolve().parents[1]
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = set(contracts["contracts"][0]["source_modules"])
    top = {
        f"napari_cellseg.{info.name}"
        for info in pkgutil.iter_modules(napari_cellseg.__path__)
        if info.name not in ("napari", "cli", "__main__")
    }
    assert top - core == set()
