"""Fixtures for the napari tests (run under Xvfb by pytest-xvfb; napari's own fixtures)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from napari.utils.notifications import Notification, notification_manager
from npe2 import PluginManager


class Notes(list):
    """Notifications shown during a test, as ``(severity, message)`` pairs."""

    def errors(self) -> list[str]:
        return [message for severity, message in self if severity == "error"]

    def warnings(self) -> list[str]:
        return [message for severity, message in self if severity == "warning"]


@pytest.fixture(autouse=True)
def _forget_session_models() -> Iterator[None]:
    """Each test starts without the models trained, and the model chosen, in earlier ones."""
    from napari_cellseg.napari._session_models import session_models

    yield
    session_models.clear()


@pytest.fixture
def own_viewer(mock_app_model) -> None:  # noqa: ANN001 - napari fixture
    """For tests that make a viewer themselves (the demo's): napari's actions and plugins are
    registered in a fresh test application, as ``make_napari_viewer`` does, not twice in the
    real one."""
    from napari._qt._qapp_model.qactions import init_qactions
    from napari.plugins import _initialize_plugins

    _initialize_plugins.cache_clear()
    init_qactions.cache_clear()


@pytest.fixture
def notes() -> Iterator[Notes]:
    """Collect napari notifications (errors, warnings, infos) shown during the test."""
    found = Notes()

    def collect(notification: Notification) -> None:
        found.append((str(notification.severity), notification.message))

    notification_manager.notification_ready.connect(collect)
    yield found
    notification_manager.notification_ready.disconnect(collect)


@pytest.fixture(scope="session")
def plugins() -> None:
    """Register installed npe2 plugins (a viewer does it too) for tests that use none."""
    PluginManager.instance().discover()


@pytest.fixture
def viewer(make_napari_viewer_proxy):  # noqa: ANN001 - napari fixture
    """A napari viewer wrapped like the one plugins receive (public attributes only)."""
    return make_napari_viewer_proxy()


@pytest.fixture
def files_in() -> Callable[[Path], set[str]]:
    """A function listing every file below a folder (hidden temporaries included)."""

    def listing(folder: Path) -> set[str]:
        return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}

    return listing
