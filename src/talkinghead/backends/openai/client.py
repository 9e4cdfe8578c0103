"""What the ``openai`` ASR, LLM and TTS backends share: the client, the API key, retries, errors.

Any server speaking the OpenAI HTTP protocol works through ``base_url``: OpenAI itself, Azure
OpenAI (``api_version`` set), Ollama, the llama.cpp server, vLLM, LM Studio...
"""

from __future__ import annotations

import io
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from ... import deadline as _deadline
from ...errors import ConfigError, DeadlineError, MissingDependencyError, ServiceError
from ...stages import BackendBase
from ...values import Audio

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Where the key is read from when it is not given in the configuration.
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def is_local(base_url: str | None) -> bool:
    """True when ``base_url`` points at this machine (Ollama, llama.cpp server, a test server)."""
    if not base_url:
        return False
    return (urlparse(base_url).hostname or "") in _LOCAL_HOSTS


def resolve_api_key(api_key: str | None, api_key_env: str | None, base_url: str | None, *, stage: str) -> str:
    """The key from the configuration, else from the environment variable ``api_key_env``.

    Local servers usually need no key; a placeholder is used for them when none is set.

    Raises:
        ConfigError: no key anywhere, naming the variable to set.
    """
    if api_key:
        return api_key
    env = api_key_env or DEFAULT_KEY_ENV
    value = os.environ.get(env, "").strip()
    if value:
        return value
    if is_local(base_url):
        return "not-needed"
    where = f" for {base_url}" if base_url else ""
    raise ConfigError(
        f"the openai {stage} backend needs an API key{where}: set the environment variable {env} "
        f"(export {env}=...) or pass api_key=... in the {stage} configuration"
    )


def make_client(
    *,
    stage: str,
    api_key: str | None,
    api_key_env: str | None,
    base_url: str | None,
    api_version: str | None,
    timeout: float,
    organization: str | None = None,
) -> Any:
    """An ``openai.OpenAI`` (or ``AzureOpenAI`` when ``api_version`` is set) with SDK retries off."""
    try:
        import openai
    except ImportError as exc:
        raise MissingDependencyError("openai", "openai", f"the openai {stage} backend") from exc
    if timeout <= 0:
        raise ConfigError(f"timeout must be positive, got {timeout}")
    if api_version:
        if not base_url:
            raise ConfigError("Azure OpenAI needs base_url='https://<resource>.openai.azure.com' with api_version")
        key = resolve_api_key(api_key, api_key_env or AZURE_KEY_ENV, base_url, stage=stage)
        return openai.AzureOpenAI(
            api_key=key, azure_endpoint=base_url, api_version=api_version, timeout=timeout, max_retries=0
        )
    key = resolve_api_key(api_key, api_key_env, base_url, stage=stage)
    return openai.OpenAI(
        api_key=key, base_url=base_url, organization=organization, timeout=timeout, max_retries=0
    )


def _status_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        msg = err.get("message") if isinstance(err, dict) else body.get("message")
        if msg:
            return str(msg)
    return str(getattr(exc, "message", "") or exc)


def classify(exc: BaseException, *, stage: str, backend: str, base_url: str | None, key_env: str) -> ServiceError | None:
    """Map an openai SDK exception to a :class:`ServiceError` (``transient`` says whether to retry).

    Returns None for exceptions that are not the SDK's.
    """
    try:
        import openai
    except ImportError:  # pragma: no cover - the client could not exist either
        return None
    where = base_url or "api.openai.com"
    if isinstance(exc, openai.APITimeoutError):
        return ServiceError(stage, backend, f"{where} did not answer in time; try again or raise timeout=", transient=True)
    if isinstance(exc, openai.APIConnectionError):
        return ServiceError(
            stage, backend, f"cannot reach {where} ({exc.__cause__ or exc}); is the server running and base_url right?",
            transient=True,
        )
    if isinstance(exc, openai.AuthenticationError):
        return ServiceError(stage, backend, f"{where} refused the API key (401); check {key_env}", transient=False)
    if isinstance(exc, openai.RateLimitError):
        code = ""
        if isinstance(exc.body, dict):
            code = str(exc.body.get("code") or "")
        if code == "insufficient_quota":
            return ServiceError(stage, backend, f"{where}: quota exhausted; check the account's billing", transient=False)
        return ServiceError(stage, backend, f"{where} is rate limiting (429); wait a moment and try again", transient=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _status_detail(exc)
        if status == 404:
            return ServiceError(stage, backend, f"{where} answered 404 ({detail}); check the model name and base_url", transient=False)
        transient = status >= 500 or status in (408, 409)
        return ServiceError(stage, backend, f"{where} answered HTTP {status}: {detail}", transient=transient)
    if isinstance(exc, openai.OpenAIError):
        return ServiceError(stage, backend, str(exc), transient=False)
    return None


def with_retries(
    call: Callable[[], T],
    *,
    stage: str,
    backend: str,
    base_url: str | None,
    key_env: str,
    retries: int,
    backoff: float,
    max_backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry transient failures with exponential back-off, then raise ServiceError.

    The delay before retry ``i`` (0-based) is ``min(max_backoff, backoff * 2**i)`` plus up to 10 %
    jitter. Permanent failures (bad key, unknown model, bad request) are raised at once. Inside a
    :func:`talkinghead.deadline.deadline`, no attempt starts after it and no retry is waited for
    that would end after it (:class:`~talkinghead.errors.DeadlineError`); ``call`` should take its
    request time-out from :func:`attempt_timeout`.
    """
    attempt = 0
    while True:
        _deadline.check(stage, backend)
        try:
            return call()
        except ServiceError:
            raise
        except Exception as exc:
            err = classify(exc, stage=stage, backend=backend, base_url=base_url, key_env=key_env)
            if err is None:
                raise
            left = _deadline.remaining()
            if err.transient and left is not None and left <= 0.05:
                raise _deadline_error(stage, backend, err) from exc
            if not err.transient or attempt >= retries:
                if err.transient and retries:
                    err = ServiceError(stage, backend, f"{_tail(err)} (gave up after {attempt + 1} attempts)", transient=True)
                raise err from exc
            delay = min(max_backoff, backoff * (2**attempt)) * (1 + 0.1 * random.random())
            if left is not None and delay >= left:
                raise _deadline_error(stage, backend, err) from exc
            log.warning("%s %s: %s; retrying in %.2f s (%d/%d)", stage, backend, _tail(err), delay, attempt + 1, retries)
            sleep(delay)
            attempt += 1


def attempt_timeout(timeout: float, stage: str = "", backend: str = "") -> float:
    """The time-out for one request: the backend's ``timeout``, or what is left of the turn's deadline."""
    return _deadline.attempt_timeout(timeout, stage, backend)


def _deadline_error(stage: str, backend: str, last: ServiceError) -> DeadlineError:
    err = _deadline._error(stage, backend)
    return DeadlineError(stage, backend, f"{_tail(err)} (last failure: {_tail(last)})")


def _tail(err: ServiceError) -> str:
    text = str(err)
    marker = "failed: "
    return text.split(marker, 1)[1] if marker in text else text


def key_env_name(api_key_env: str | None, api_version: str | None) -> str:
    """The environment variable the key comes from, for messages."""
    return api_key_env or (AZURE_KEY_ENV if api_version else DEFAULT_KEY_ENV)


def wav_bytes(audio: Audio, sample_rate: int = 16000) -> bytes:
    """Encode ``audio`` as 16-bit PCM WAV at ``sample_rate`` (what transcription APIs accept)."""
    import soundfile as sf

    audio = audio.resample(sample_rate)
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio.samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def decode_audio(data: bytes, response_format: str, pcm_rate: int = 24000) -> Audio:
    """Decode speech returned by a server: raw 16-bit little-endian ``pcm`` or an encoded file."""
    if response_format == "pcm":
        if len(data) % 2:
            data = data[:-1]
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        return Audio(samples, pcm_rate)
    from ...io import load_audio

    return load_audio(bytes(data))


class ClientBackend(BackendBase):
    """Shared ``load``/``close`` of the backends that talk to an OpenAI-protocol server.

    Subclasses set ``api_key``, ``api_key_env``, ``base_url``, ``api_version`` and ``timeout``
    (and optionally ``organization``) in their constructor.
    """

    _client: Any = None

    def _attempt_timeout(self) -> float:
        """This backend's ``timeout``, or less when the turn's deadline is nearer."""
        return attempt_timeout(self.timeout, self.stage, self.name)

    def load(self) -> None:
        if self._client is None:
            extra = {"organization": self.organization} if getattr(self, "organization", None) else {}
            self._client = make_client(
                stage=self.stage, api_key=self.api_key, api_key_env=self.api_key_env, base_url=self.base_url,
                api_version=self.api_version, timeout=self.timeout, **extra,
            )

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
