"""Editor test configuration: Qt tests never read or write the user's settings or folders."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _qt_standard_paths_test_mode():
    """QStandardPaths (and so QSettings-backed preferences) point at test locations."""
    from PySide6.QtCore import QStandardPaths

    QStandardPaths.setTestModeEnabled(True)
    yield


@pytest.fixture
def make_window(qtbot, tmp_path):
    """MainWindows of the test's own (each with its own settings file), closed down after it
    without removing their autosaves (the tests look at those)."""
    from PySide6.QtCore import QSettings

    from editor.main_window import MainWindow
    from editor.settings import Settings

    made = []

    def make():
        settings = Settings(QSettings(str(tmp_path / f"settings-{len(made)}.ini"), QSettings.Format.IniFormat))
        window = MainWindow(settings=settings)
        qtbot.addWidget(window)
        made.append(window)
        return window

    yield make
    for window in made:
        window.autosave.shutdown(remove=False)
        window.bridge.shutdown()
