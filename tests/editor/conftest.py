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


@pytest.fixture(scope="session")
def tiny_sd_fast(tiny_sd, tmp_path_factory):
    """A copy of `tiny_sd` with a tiny decoder of its own (`vae_tiny/`, as TAESD sits beside a
    model), so Fast decode and Refine have something to work with. The shared fixture folder is
    left as it is."""
    import shutil

    from diffusers import AutoencoderTiny

    folder = tmp_path_factory.mktemp("tiny_sd_fast") / "tiny-sd-fast"
    shutil.copytree(tiny_sd, folder)
    # Two blocks: it upsamples by 2, as the tiny VAE of tiny_sd does, so both decoders give 64 px.
    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                    num_decoder_blocks=(1, 1), latent_channels=4).save_pretrained(folder / "vae_tiny")
    return folder
