import io

import pytest

from talkinghead.cli import convert_value, main, parse_settings
from talkinghead.errors import ConfigError


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_plugins_lists_stage_name_package_capabilities():
    code, out, _ = run("plugins")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("tts") and " piper " in ln)
    assert "talkinghead" in line and "phonemes" in line


def test_say_with_fakes_writes_mp4(fakes, portrait_path, tmp_path):
    pytest.importorskip("av")
    target = tmp_path / "out.mp4"
    code, out, err = run(
        "say", "-i", str(portrait_path), "-t", "hello world", "-o", str(target),
        "--tts", "fake", "--animator", "fake", "--set", "animator.chunk_size=4", "--fps", "10",
    )
    assert code == 0, err
    assert target.exists() and str(target) in out and "at 10 fps" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "animator.chunk_size=many"], "not a valid int"),
        (["--set", "animator.colour=red"], "no option 'colour'"),
        (["--set", "novalue"], "key=value"),
        (["--animator", "nope"], "no animator backend named 'nope'"),
    ],
)
def test_config_errors_exit_1_and_leave_no_file(fakes, portrait_path, tmp_path, extra, message):
    target = tmp_path / "out.mp4"
    args = ["say", "-i", str(portrait_path), "-t", "hi there", "-o", str(target), "--tts", "fake"]
    if "--animator" not in extra:
        args += ["--animator", "fake"]
    code, _, err = run(*args, *extra)
    assert code == 1 and message in err and err.startswith("error:")
    assert not target.exists()


def test_bad_inputs_exit_1(fakes, tmp_path, portrait_path):
    target = tmp_path / "o.mp4"
    code, _, err = run("say", "-i", str(tmp_path / "none.png"), "-t", "x", "-o", str(target), "--animator", "fake")
    assert code == 1 and "not found" in err
    code, _, err = run("say", "-i", str(portrait_path), "-t", "  ", "-o", str(target), "--tts", "fake", "--animator", "fake")
    assert code == 1 and "empty" in err
    assert not target.exists()


def test_typed_conversion():
    from typing import Literal, Optional

    assert convert_value("3", int, "x") == 3
    assert convert_value("yes", bool, "x") is True
    assert convert_value("none", Optional[float], "x") is None
    assert convert_value("0.5", Optional[float], "x") == 0.5
    assert convert_value("1,2,3", list[int], "x") == [1, 2, 3]
    assert convert_value("crop", Literal["crop", "full"], "x") == "crop"
    with pytest.raises(ConfigError):
        convert_value("side", Literal["crop", "full"], "x")
    assert parse_settings(["a=1", "tts.b=2"]) == {"": {"a": "1"}, "tts": {"b": "2"}}


def test_version_and_help():
    assert run("--version")[0] == 0
    assert run()[0] == 2


def test_weights_commands(tmp_path):
    code, out, _ = run("weights", "path", "--cache-dir", str(tmp_path))
    assert code == 0 and str(tmp_path) in out
    code, out, _ = run("weights", "list", "--cache-dir", str(tmp_path))
    assert code == 0 and "sadtalker-256" in out and "missing" in out
    code, out, err = run("weights", "verify", "sadtalker", "--cache-dir", str(tmp_path))
    assert "missing" in (out + err).lower()
    code, out, err = run("weights", "download", "no-such-file", "--cache-dir", str(tmp_path))
    assert code == 2


def test_ask_and_voices_commands(fakes, portrait_path, tmp_path, monkeypatch):
    import json

    from talkinghead.testing.openai_server import OpenAIServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer() as server:
        server.enqueue("I walked on the moon. It was quiet.")
        code, out, err = run(
            "ask", "-i", str(portrait_path), "--question", "What did you do?", "--json",
            "--tts", "fake", "--animator", "fake", "--writer", "memory",
            "--set", f"llm.base_url={server.base_url}", "--set", "llm.retries=0",
            "--output-dir", str(tmp_path),
        )
        assert code == 0, err
        reply = json.loads(out)
        assert reply["answer"].startswith("I walked on the moon")
        sent = server.chat_requests()[-1].json["messages"]
        assert sent[-1] == {"role": "user", "content": "What did you do?"}
    code, out, _ = run("voices", "--tts", "piper")
    assert code == 0 and "en_US-joe-medium" in out
