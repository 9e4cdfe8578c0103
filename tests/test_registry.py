import pytest

from talkinghead import hookimpl
from talkinghead.errors import BackendNotFoundError, ConfigError
from talkinghead.plugins import add_plugin, create_backend, get_registry, reset
from talkinghead.stages import TTS, BackendBase


def test_builtins_register_through_the_hook():
    reg = get_registry()
    assert reg.get("tts", "piper").plugin == "talkinghead"
    assert isinstance(create_backend("tts", "piper"), TTS)


def test_misspelt_backend_lists_what_exists():
    with pytest.raises(BackendNotFoundError) as info:
        get_registry().get("tts", "pipr")
    assert "piper" in str(info.value) and "talkinghead plugins" in str(info.value)


def test_unknown_stage_and_option():
    with pytest.raises(ConfigError, match="unknown stage"):
        get_registry().get("painter", "x")
    with pytest.raises(ConfigError, match="no option 'colour'"):
        create_backend("tts", "piper", colour="red")


def test_runtime_plugin_and_bad_declarations():
    class Shouty(BackendBase):
        stage = "tts"
        name = "shouty"

    class NoStage:
        name = "x"

    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register(Shouty)

    reset()
    try:
        add_plugin(Plugin())
        assert get_registry().get("tts", "shouty").cls is Shouty
        with pytest.raises(ConfigError, match="declares stage"):
            get_registry().register(NoStage)
    finally:
        reset()


def test_misspelt_hook_is_rejected():
    from pluggy import PluginValidationError

    class Bad:
        @hookimpl
        def register_backend(self, register):  # missing "s"
            pass

    reset()
    try:
        with pytest.raises(PluginValidationError):
            add_plugin(Bad())
    finally:
        reset()


def test_allow_list_env(monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_LOAD_PLUGINS", "")
    reset()
    try:
        assert ("tts", "piper") in [(b.stage, b.name) for b in get_registry().all()]
    finally:
        reset()
