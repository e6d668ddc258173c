"""Settings persist across runs and tell widgets about real changes only."""

import pytest
from PySide6.QtCore import QSettings

from editor.settings import DEFAULTS, MAX_RECENT, Settings


@pytest.fixture
def store(tmp_path):
    return lambda: QSettings(str(tmp_path / "quickbrush.ini"), QSettings.Format.IniFormat)


def test_defaults_then_persist_across_instances(qapp, store):
    first = Settings(store())
    assert first.steps == DEFAULTS["steps"] and first.prompt == ""
    first.steps = 4
    first.prompt = "a red apple, flat icon"
    first.seed_locked = True
    first.guidance = 1.5
    first.sync()
    second = Settings(store())
    assert (second.steps, second.prompt, second.seed_locked, second.guidance) == (4, "a red apple, flat icon", True, 1.5)


def test_changed_signal_only_on_real_change(qapp, store, qtbot):
    settings = Settings(store())
    seen = []
    settings.steps_changed.connect(seen.append)
    settings.steps = 3
    settings.steps = 3
    settings.steps = "3"  # a spin box's text coerces to the same value: no signal
    settings.steps = 5
    assert seen == [3, 5]


def test_bind_delivers_the_current_value_first(qapp, store):
    settings = Settings(store())
    settings.brush_size = 12
    seen = []
    settings.bind("brush_size", seen.append)
    settings.brush_size = 30
    assert seen == [12, 30]


def test_recent_files_are_unique_newest_first_and_bounded(qapp, store):
    settings = Settings(store())
    for i in range(MAX_RECENT + 3):
        settings.add_recent_file(f"/pictures/{i}.png")
    settings.add_recent_file("/pictures/5.png")
    recent = Settings(store()).recent_files
    assert recent[0] == "/pictures/5.png" and len(recent) == MAX_RECENT and len(set(recent)) == MAX_RECENT


def test_a_damaged_settings_file_falls_back_to_defaults(qapp, store, tmp_path):
    (tmp_path / "quickbrush.ini").write_text("[General]\nsteps=not json\nrecent_files=3\n")
    settings = Settings(store())
    assert settings.steps == DEFAULTS["steps"] and settings.recent_files == []


def test_unknown_setting_is_an_error(qapp, store):
    with pytest.raises(KeyError):
        Settings(store()).set("nope", 1)
