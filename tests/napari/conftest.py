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
