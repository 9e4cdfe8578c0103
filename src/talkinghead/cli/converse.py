"""``talkinghead ask``, ``chat`` and ``voices``: conversation from the command line.

``run_ask``, ``run_chat`` and ``list_voices`` take typed arguments and return exit codes; the
``cmd_*`` functions wire them to the parsed flags.

Exit codes: 0 success, 1 a stage or service failed, 2 bad input or configuration,
3 nothing was understood in a spoken question.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from ..errors import (
    BadInputError,
    ConfigError,
    MissingDependencyError,
    ModelLoadError,
    NothingUnderstoodError,
    ServiceError,
    TalkingHeadError,
)
from .common import (
    ProgressBar,
    add_render_flags,
    build_avatar as avatar_from_flags,
    parse_settings,
    stream_video,
    typed_config,
)

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_UNDERSTOOD = 0, 1, 2, 3

#: Lines of ``chat`` input that are commands rather than questions.
CHAT_COMMANDS = {"/reset": "forget the conversation so far", "/quit": "leave", "/exit": "leave", "/help": "this help"}


def exit_code(exc: BaseException) -> int:
    """The exit code for an error raised by a command."""
    if isinstance(exc, NothingUnderstoodError):
        return EXIT_NOT_UNDERSTOOD
    if isinstance(exc, (BadInputError, ConfigError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def build_avatar(
    image: str | os.PathLike,
    *,
    tts: Any = "piper",
    asr: Any = "faster-whisper",
    llm: Any = "openai",
    animator: Any = None,
    writer: Any = "mp4",
    avatar_options: Mapping[str, Any] | None = None,
) -> Any:
    """An :class:`~talkinghead.Avatar` for conversation (stages as names, (name, config) or objects)."""
    from ..avatar import Avatar

    return Avatar(image, tts=tts, asr=asr, llm=llm, animator=animator, writer=writer, **dict(avatar_options or {}))


def run_ask(
    image: str | os.PathLike | None = None,
    *,
    question: str | None = None,
    audio: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    avatar: Any = None,
    tts: Any = "piper",
    asr: Any = "faster-whisper",
    llm: Any = "openai",
    animator: Any = None,
    writer: Any = "mp4",
    avatar_options: Mapping[str, Any] | None = None,
    language: str | None = None,
    json_output: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``talkinghead ask --image P (--question T | --audio A) [-o OUT]``: answer one question.

    Prints the (transcribed) question, the answer and the video path; with ``json_output`` one
    JSON object instead. ``avatar`` may be given instead of ``image`` and the stage options.

    Returns:
        An exit code (see the module docstring).
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if (question is None) == (audio is None):
        print("error: give exactly one of --question TEXT or --audio FILE", file=stderr)
        return EXIT_BAD_INPUT
    try:
        if avatar is None:
            if image is None:
                print("error: --image is required", file=stderr)
                return EXIT_BAD_INPUT
            avatar = build_avatar(
                image, tts=tts, asr=asr if audio is not None else None, llm=llm, animator=animator, writer=writer,
                avatar_options=avatar_options,
            )
        if audio is not None:
            from ..io import load_audio

            reply = avatar.ask(load_audio(audio), output, language=language)
        else:
            reply = avatar.ask(question, output, language=language)
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=stderr)
        return exit_code(exc)
    _print_reply(reply, stdout, json_output)
    return EXIT_OK


def run_chat(
    avatar: Any,
    input_stream: TextIO,
    output_stream: TextIO,
    *,
    error_stream: TextIO | None = None,
    json_output: bool = False,
    prompt: str | None = None,
) -> int:
    """``talkinghead chat``: one question per input line, an answer and its video path per reply.

    A line that is the path of an existing audio file is transcribed (needs an ASR stage).
    ``/reset`` forgets the conversation, ``/quit`` (or end of input) leaves. The avatar's models are
    loaded before the first question, so a missing package or model is reported once, at the start.
    A failed turn is reported on ``error_stream`` and the chat goes on, unless no later question
    could succeed (a configuration error, a missing package or model, a refused API key): then the
    chat ends with that error's exit code.

    Args:
        avatar: the :class:`~talkinghead.Avatar` to talk with (it needs an ``llm`` stage).
        input_stream: where questions come from (``sys.stdin``).
        output_stream: where answers and video paths go (``sys.stdout``).
        error_stream: where errors go (default: ``output_stream``).
        json_output: write one JSON object per reply instead of text.
        prompt: printed before reading each line (e.g. ``"you> "`` for an interactive terminal).

    Returns:
        0 when the input ended or the user left; otherwise the exit code of the error that ended it
        (1 a stage or service failed, 2 bad configuration).
    """
    errors = error_stream or output_stream
    if getattr(avatar, "llm", None) is None:
        print("error: chat needs an LLM; pass --llm openai (and --set llm.base_url=URL for a local server)", file=errors)
        return EXIT_BAD_INPUT
    preload = getattr(avatar, "preload", None)
    if preload is not None:
        try:  # a missing extra or model fails here, once, before the first question
            preload()
        except TalkingHeadError as exc:
            print(f"error: {exc}", file=errors)
            return exit_code(exc)
    while True:
        if prompt:
            output_stream.write(prompt)
            output_stream.flush()
        line = input_stream.readline()
        if not line:
            return EXIT_OK
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return EXIT_OK
        if line == "/reset":
            avatar.reset()
            print("(conversation forgotten)", file=errors)
            continue
        if line == "/help":
            for cmd, what in CHAT_COMMANDS.items():
                print(f"{cmd:8} {what}", file=errors)
            continue
        try:
            reply = avatar.ask(line)
        except TalkingHeadError as exc:
            print(f"error: {exc}", file=errors)
            if _fatal(exc):  # the next question would fail the same way
                return exit_code(exc)
            continue
        _print_reply(reply, output_stream, json_output)
        output_stream.flush()


def _fatal(exc: TalkingHeadError) -> bool:
    """Errors no other question can avoid: configuration, missing packages or models, a refused key."""
    if isinstance(exc, (ConfigError, MissingDependencyError, ModelLoadError)):
        return True
    return isinstance(exc, ServiceError) and not exc.transient


def list_voices(
    tts_name: str,
    config: Mapping[str, Any] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``talkinghead voices --tts NAME``: print the voices of a TTS backend, one per line."""
    from ..plugins import create_backend

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        backend = create_backend("tts", tts_name, **dict(config or {}))
        names = list(backend.voices())
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=stderr)
        return exit_code(exc)
    for name in names:
        print(name, file=stdout)
    return EXIT_OK


def _print_reply(reply: Any, stream: TextIO, json_output: bool) -> None:
    if json_output:
        payload = {
            "question": reply.question,
            "answer": reply.answer,
            "video": os.fspath(reply.video.path),
            "timings": {k: round(v, 3) for k, v in reply.timings.items()},
        }
        print(json.dumps(payload), file=stream)
        return
    if reply.transcript is not None:
        print(f"question: {reply.question}", file=stream)
    print(f"answer: {reply.answer}", file=stream)
    print(f"video: {os.fspath(reply.video.path)}", file=stream)


# -- flags ---------------------------------------------------------------------------------------
def add_parsers(sub: argparse._SubParsersAction) -> None:
    def convo_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--asr", metavar="NAME", default="faster-whisper", help="ASR backend (default faster-whisper)")
        p.add_argument("--llm", metavar="NAME", default="openai", help="LLM backend (default openai; --set llm.base_url=...)")
        p.add_argument("--system-prompt", help="the persona / system prompt")
        p.add_argument("--memory", type=int, default=2, help="previous exchanges sent to the LLM (default 2)")
        p.add_argument("--json", action="store_true", help="one JSON object per reply")

    p = sub.add_parser("ask", help="answer one question (text or speech) with a video")
    add_render_flags(p, output_required=False)
    convo_flags(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--question", "-Q", help="the question as text")
    group.add_argument("--audio", "-a", help="the question as speech (WAV, FLAC, OGG, MP3)")
    p.add_argument("--language", help="language of the spoken question (default: detect)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive conversation: a question per line, a video per answer")
    add_render_flags(p, output_required=False)
    convo_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("voices", help="list the voices of a TTS backend")
    p.add_argument("--tts", required=True, metavar="NAME")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="backend option, repeatable")
    p.set_defaults(func=cmd_voices)


def _conversation_avatar(args: argparse.Namespace, progress: ProgressBar):
    extra: dict[str, Any] = {"memory": args.memory}
    if args.system_prompt:
        extra["system_prompt"] = args.system_prompt
    if getattr(args, "output_dir", None):
        extra["output_dir"] = args.output_dir
    return avatar_from_flags(args, progress, **extra)


def cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.question is not None:
        args.asr = None  # a typed question needs no speech recognition
    if args.output == "-":
        return cmd_ask_stream(args, out, err)
    progress = ProgressBar(err, enabled=not args.quiet)
    try:
        avatar = _conversation_avatar(args, progress)
        return run_ask(
            question=args.question, audio=args.audio, output=args.output, avatar=avatar,
            language=args.language, json_output=args.json, stdout=out, stderr=err,
        )
    finally:
        progress.close()


def cmd_ask_stream(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``ask -o -``: the answer as fragmented MP4 on stdout, spoken while the LLM writes it."""
    from ..streaming.events import Caption

    def show(event: Any) -> None:
        if isinstance(event, Caption) and event.role == "user" and args.audio is not None:
            err.write(f"question: {event.text}\n")

    try:
        avatar = _conversation_avatar(args, ProgressBar(err, enabled=False))
        if args.audio is not None:
            from ..io import load_audio

            question: Any = load_audio(args.audio)
        else:
            question = args.question
        code = stream_video(avatar.ask_stream(question, language=args.language, on_event=show), out, err)
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=err)
        return exit_code(exc)
    history = avatar.conversation.history
    if history:
        err.write(f"answer: {history[-1][1]}\n")
    return code


def cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    avatar = _conversation_avatar(args, ProgressBar(err, enabled=False))
    interactive = sys.stdin.isatty()
    if interactive:
        err.write("talkinghead chat: type a question (or the path of a recording); /reset, /quit\n")
    return run_chat(avatar, sys.stdin, out, error_stream=err, json_output=args.json, prompt="you> " if interactive else None)


def cmd_voices(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    raw = parse_settings(args.set or [])
    config = typed_config("tts", args.tts, {**raw.get("", {}), **raw.get("tts", {})})
    return list_voices(args.tts, config, stdout=out, stderr=err)
