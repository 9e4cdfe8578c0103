"""The server's use of the library: one model cache, request choices checked against the registry,
Avatars built for jobs, and a bounded pool for blocking work done while a request waits.

Models load once per process into the engine's :class:`~talkinghead.ModelCache` and are shared
by every job, turn and session; per-portrait preprocessing is cached there too.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import typing
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..cache import ModelCache
from ..errors import BackendNotFoundError, ConfigError
from ..plugins import config_options, get_registry
from ..values import Portrait, VoiceProfile
from .settings import ServerSettings

log = logging.getLogger(__name__)

__all__ = ["Engine", "RenderSpec"]

T = TypeVar("T")

#: Stages a client may choose a backend for (the writer and the conversation stages are the operator's).
CLIENT_STAGES = ("tts", "animator", "enhancer")


@dataclass(frozen=True)
class RenderSpec:
    """The checked choices for one video: backends, voice, animator options and frame rate."""

    tts: str
    animator: str
    enhancer: str | None = None
    voice: str | None = None
    fps: float = 20.0
    animator_options: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tts": self.tts, "voice": self.voice, "animator": self.animator, "enhancer": self.enhancer,
            "fps": self.fps, "animator_options": dict(self.animator_options),
        }


class Engine:
    """Backends, Avatars and blocking work for one server.

    Args:
        settings: the server's settings.
        cache: the model cache to share (default: a new one owned by this engine).
    """

    def __init__(self, settings: ServerSettings, cache: ModelCache | None = None) -> None:
        self.settings = settings
        self.cache = cache if cache is not None else ModelCache(max_portraits=settings.max_portraits)
        self._pool = ThreadPoolExecutor(max_workers=settings.request_workers, thread_name_prefix="talkinghead-req")
        # Preparing a portrait runs face detectors whose native graphs are not all safe to share
        # between threads; preparing is cached and short, so jobs take turns for it.
        self._prepare_lock = threading.Lock()

    # -- blocking work ---------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn`` in the request pool without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the request pool (the model cache is left to its owner)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- choices ---------------------------------------------------------------------------------
    def default(self, stage: str) -> str | None:
        """The backend used for ``stage`` when a request names none."""
        name = self.settings.stages.get(stage)
        if name is None and stage == "animator":
            from ..plugins import default_animator

            return default_animator()
        return name

    def allowed(self, stage: str) -> list[str]:
        """Backend names clients may choose for ``stage`` (registered and allowed by the operator)."""
        names = get_registry().names(stage)
        allow = self.settings.allowed_backends.get(stage)
        return [n for n in names if allow is None or n in allow]

    def check_backend(self, stage: str, name: str | None) -> str | None:
        """``name`` if clients may use it for ``stage``; the default when None or empty.

        Raises:
            BackendNotFoundError: not registered, or not allowed on this server.
        """
        if name is None or name == "":
            return self.default(stage)
        if stage == "enhancer" and name == "none":
            return None
        if name not in self.allowed(stage):
            raise BackendNotFoundError(stage, name, self.allowed(stage))
        return name

    def animator_options(self, animator: str, options: Mapping[str, Any] | None, emotion: str | None) -> dict[str, Any]:
        """Check the client's animator options (and ``emotion``) against the allow-list and the backend.

        Raises:
            ConfigError: an option clients may not set, an animator without ``emotion``, or a
                value the backend refuses.
        """
        options = dict(options or {})
        if emotion:
            if "emotion" not in config_options("animator", animator):
                raise ConfigError(
                    f"the {animator!r} animator does not take an emotion; leave emotion empty or choose an "
                    "animator that has one"
                )
            options["emotion"] = emotion
        allowed = set(self.settings.client_options.get(animator, ()))
        bad = sorted(set(options) - allowed)
        if bad:
            listing = ", ".join(sorted(allowed & set(config_options("animator", animator)))) or "none"
            raise ConfigError(
                f"animator option(s) {', '.join(bad)} cannot be set by clients of this server; allowed: {listing}"
            )
        for key, value in options.items():
            if not isinstance(value, (int, float, str, bool)) or value is None:
                raise ConfigError(f"animator option {key} must be a number, a string or true/false")
        # the backend's own constructor checks types and ranges
        get_registry().create("animator", animator, {**self.settings.options_for("animator", animator), **options})
        return options

    def check_voice(self, tts: str, voice: str | None) -> str | None:
        """``voice`` if the TTS backend lists it (or None for its default voice).

        Raises:
            ConfigError: the backend has no such voice.
        """
        if not voice:
            return None
        voices = list(self.backend("tts", tts).voices())
        if voice not in voices:
            shown = ", ".join(voices[:20]) + (" ..." if len(voices) > 20 else "")
            raise ConfigError(f"the {tts!r} voice backend has no voice {voice!r}; voices: {shown or 'none'}")
        return voice

    def render_spec(
        self,
        *,
        tts: str | None = None,
        voice: str | None = None,
        animator: str | None = None,
        enhancer: str | None = None,
        fps: float | None = None,
        emotion: str | None = None,
        animator_options: Mapping[str, Any] | None = None,
    ) -> RenderSpec:
        """Check a client's choices and return them as a :class:`RenderSpec` (blocking: may list voices)."""
        tts_name = self.check_backend("tts", tts)
        animator_name = self.check_backend("animator", animator)
        enhancer_name = self.check_backend("enhancer", enhancer)
        if tts_name is None or animator_name is None:
            raise ConfigError("this server has no default tts/animator; name one in the request")
        if fps is None:
            fps = 20.0
        if not 1 <= float(fps) <= self.settings.max_fps:
            raise ConfigError(f"fps must be between 1 and {self.settings.max_fps:g}, got {fps:g}")
        opts = self.animator_options(animator_name, animator_options, emotion)
        return RenderSpec(
            tts=tts_name, animator=animator_name, enhancer=enhancer_name, voice=self.check_voice(tts_name, voice),
            fps=float(fps), animator_options=opts,
        )

    # -- backends and avatars --------------------------------------------------------------------
    def backend(self, stage: str, name: str, client_options: Mapping[str, Any] | None = None) -> Any:
        """The shared backend instance (operator options merged with the client's)."""
        return self.cache.backend(stage, name, {**self.settings.options_for(stage, name), **dict(client_options or {})})

    def avatar(
        self,
        portrait: Portrait,
        spec: RenderSpec,
        *,
        progress: Callable[[str, int, int], None] | None = None,
        conversation: bool = False,
        system_prompt: str | None = None,
        max_size: int | None = None,
    ) -> Any:
        """An :class:`~talkinghead.Avatar` for ``portrait`` with the spec's backends from the shared cache.

        With ``conversation`` it gets the server's LLM too (the ASR is added by :meth:`with_asr`
        when a question is spoken, so typed conversations work without one). ``max_size``: the
        portrait's long side (default: the server's ``max_portrait_size``).

        Raises:
            ConfigError: a conversation was asked for but the server has no LLM.
        """
        from ..avatar import Avatar
        from ..conversation import DEFAULT_SYSTEM_PROMPT

        stages: dict[str, Any] = {
            "tts": self.backend("tts", spec.tts),
            "animator": self.backend("animator", spec.animator, spec.animator_options),
            "enhancer": self.backend("enhancer", spec.enhancer) if spec.enhancer else None,
            "writer": self.backend("writer", self.settings.stages["writer"] or "mp4"),
        }
        if conversation:
            llm = self.settings.stages.get("llm")
            if not llm:
                raise ConfigError(
                    "this server has no LLM, so it cannot hold conversations; start it with --llm openai "
                    "--set llm.base_url=... (any OpenAI-compatible server) or --llm llama-cpp"
                )
            stages["llm"] = self.backend("llm", llm)
        return Avatar(
            portrait, **stages, fps=spec.fps, progress=progress, cache=self.cache,
            max_size=max_size or self.settings.max_portrait_size,
            system_prompt=system_prompt or self.settings.system_prompt or DEFAULT_SYSTEM_PROMPT,
            memory=self.settings.memory,
        )

    def with_asr(self, avatar: Any) -> Any:
        """Give a conversation's Avatar the server's ASR stage (for spoken questions).

        Raises:
            ConfigError: the server has no ASR.
        """
        if avatar.asr is None:
            name = self.settings.stages.get("asr")
            if not name:
                raise ConfigError("this server has no speech recognition (asr); type the question instead")
            avatar.asr = self.backend("asr", name)
        return avatar

    def prepare(self, avatar: Any) -> None:
        """Load the avatar's models and preprocess its portrait (cached), one job at a time."""
        with self._prepare_lock:
            avatar.preload()

    @staticmethod
    def voice_profile(spec: RenderSpec) -> VoiceProfile | None:
        return VoiceProfile(voice=spec.voice) if spec.voice else None

    # -- description -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What clients may choose: backends per stage, voices, client options with their types."""
        out: dict[str, Any] = {"defaults": {}, "stages": {}}
        for stage in CLIENT_STAGES:
            items = []
            for name in self.allowed(stage):
                info = get_registry().get(stage, name)
                item: dict[str, Any] = {"name": name, "description": info.description,
                                        "capabilities": sorted(info.capabilities)}
                if stage == "tts":
                    item["voices"] = self._voices(name)
                if stage == "animator":
                    item["options"] = self._client_option_info(name)
                items.append(item)
            out["stages"][stage] = items
            try:
                out["defaults"][stage] = self.default(stage)
            except Exception as exc:  # a broken default must not hide the rest
                log.warning("default %s backend unavailable: %s", stage, exc)
                out["defaults"][stage] = None
        out["conversation"] = bool(self.settings.stages.get("llm"))
        out["limits"] = {
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_image_pixels": self.settings.max_image_pixels,
            "max_audio_seconds": self.settings.max_audio_seconds,
            "max_text_chars": self.settings.max_text_chars,
            "max_fps": self.settings.max_fps,
        }
        return out

    def _voices(self, tts: str) -> list[str]:
        try:
            return list(self.backend("tts", tts).voices())
        except Exception as exc:  # a backend that cannot list voices here still renders with its default
            log.info("cannot list voices of tts %r: %s", tts, exc)
            return []

    def _client_option_info(self, animator: str) -> list[dict[str, Any]]:
        params = config_options("animator", animator)
        cls = get_registry().get("animator", animator).cls
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:
            hints = {}
        result = []
        for name in self.settings.client_options.get(animator, ()):
            if name not in params:
                continue
            default = params[name].default
            item: dict[str, Any] = {"name": name, "type": _type_name(hints.get(name)),
                                    "default": None if default is inspect.Parameter.empty else default}
            choices = _choices(hints.get(name))
            if choices:
                item["choices"] = choices
            result.append(item)
        return result


def _type_name(annotation: Any) -> str:
    if annotation in (int, float, bool, str):
        return annotation.__name__
    if typing.get_origin(annotation) is typing.Literal:
        return "choice"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1:
        return _type_name(args[0])
    return "any"


def _choices(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            return list(typing.get_args(arg))
    return []
