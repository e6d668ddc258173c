"""Editor test configuration: Qt tests never read or write the user's settings or folders."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _qt_standard_paths_test_mode():
    """QStandardPaths (and so QSettings-backed preferences) point at test locations."""
    from PySide6.QtCore import QStandardPaths

    QStandardPaths.setTestModeEnabled(True)
    yield
