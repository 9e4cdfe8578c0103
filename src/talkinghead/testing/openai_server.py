"""A small local server speaking the OpenAI HTTP protocol, for tests of OpenAI-compatible backends.

It implements ``POST /v1/chat/completions`` (plain and streamed as server-sent events),
``POST /v1/audio/transcriptions`` (multipart upload; answers a scripted transcript),
``POST /v1/audio/speech`` (a WAV or raw PCM tone, or whatever ``speech`` returns) and
``GET /v1/models``. Every request is recorded, and faults can be scripted (HTTP status codes such as
429 or 500, or slow answers that run past the client's time-out)::

    with OpenAIServer(answers=["Hello!"]) as server:
        llm = OpenAILLM(base_url=server.base_url, model="test")
        assert llm.complete([ChatMessage("user", "hi")]) == "Hello!"
        assert server.requests[-1].json["messages"][-1]["content"] == "hi"

It binds 127.0.0.1 on a free port and serves each request on its own thread.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from ..values import Audio

__all__ = ["OpenAIServer", "QuietHTTPServer", "RecordedRequest", "parse_multipart"]


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server for tests that does not print tracebacks of clients that hang up.

    ``socketserver`` prints every exception a handler raises to stderr; a client that closes its
    connection mid-response (what the download and streaming tests do on purpose) is not an
    error. Other exceptions go to this module's logger, with their traceback.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        logging.getLogger(__name__).warning("test server: request from %s failed", client_address, exc_info=exc)


@dataclass
class RecordedRequest:
    """One request the server received (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 200


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """Split a ``multipart/form-data`` body into text fields and file contents."""
    boundary = None
    for part in content_type.split(";"):
        part = part.strip()
        if part.startswith("boundary="):
            boundary = part[len("boundary=") :].strip('"')
    if not boundary:
        raise ValueError("multipart body without boundary")
    form: dict[str, str] = {}
    files: dict[str, bytes] = {}
    delimiter = b"--" + boundary.encode()
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, data = chunk.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = head.decode("utf-8", "replace")
        name = filename = None
        for line in headers.split("\r\n"):
            if line.lower().startswith("content-disposition"):
                for item in line.split(";"):
                    item = item.strip()
                    if item.startswith("name="):
                        name = item[5:].strip('"')
                    elif item.startswith("filename="):
                        filename = item[9:].strip('"')
        if name is None:
            continue
        if filename is not None:
            files[name] = data
        else:
            form.setdefault(name, data.decode("utf-8", "replace"))
    return form, files


class OpenAIServer:
    """A scripted OpenAI-protocol server on ``127.0.0.1`` (see the module docstring).

    Args:
        answers: chat answers given in order; when they run out, ``default_answer`` is used.
            An answer may be a callable ``f(request_json) -> str``.
        default_answer: the answer when the script is empty (``"{question}"`` is replaced by the
            last user message).
        transcripts: texts returned by ``/v1/audio/transcriptions`` in order, then ``default_transcript``.
        speech: ``f(text) -> Audio`` used by ``/v1/audio/speech`` (default: tone bursts per word).
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
        stream_delay: seconds between streamed chunks.
    """

    def __init__(
        self,
        *,
        answers: Iterable[str | Callable[[dict], str]] = (),
        default_answer: str = "You asked: {question}",
        transcripts: Iterable[str] = (),
        default_transcript: str = "hello how are you",
        speech: Callable[[str], Audio] | None = None,
        api_key: str | None = None,
        stream_delay: float = 0.0,
    ) -> None:
        self._answers: deque = deque(answers)
        self.default_answer = default_answer
        self._transcripts: deque[str] = deque(transcripts)
        self.default_transcript = default_transcript
        self.speech = speech
        self.api_key = api_key
        self.stream_delay = stream_delay
        self.requests: list[RecordedRequest] = []
        self._faults: deque[tuple[int, float]] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------------------------
    def enqueue(self, *answers: str | Callable[[dict], str]) -> None:
        """Add chat answers to the script."""
        with self._lock:
            self._answers.extend(answers)

    def enqueue_transcripts(self, *texts: str) -> None:
        """Add transcription results to the script."""
        with self._lock:
            self._transcripts.extend(texts)

    def fail(self, *statuses: int) -> None:
        """The next requests get these HTTP statuses (e.g. ``fail(429, 429)`` then success)."""
        with self._lock:
            self._faults.extend((int(s), 0.0) for s in statuses)

    def slow(self, seconds: float, count: int = 1) -> None:
        """The next ``count`` requests wait ``seconds`` before answering (to trigger time-outs)."""
        with self._lock:
            self._faults.extend((0, float(seconds)) for _ in range(count))

    # -- views -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() or use it as a context manager")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat-completion requests received (including refused ones)."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> OpenAIServer:
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = QuietHTTPServer(("127.0.0.1", 0), handler)
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=lambda: httpd.serve_forever(poll_interval=0.05), name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------------------------
    def _next_fault(self) -> tuple[int, float]:
        with self._lock:
            return self._faults.popleft() if self._faults else (0, 0.0)

    def _next_answer(self, request: dict) -> str:
        with self._lock:
            answer = self._answers.popleft() if self._answers else None
        if callable(answer):
            return answer(request)
        if answer is not None:
            return answer
        question = ""
        for m in reversed(request.get("messages") or []):
            if m.get("role") == "user":
                question = m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
                break
        return self.default_answer.replace("{question}", question)

    def _next_transcript(self) -> str:
        with self._lock:
            return self._transcripts.popleft() if self._transcripts else self.default_transcript

    def _speech_bytes(self, text: str, response_format: str) -> tuple[bytes, str]:
        if self.speech is not None:
            audio = self.speech(text)
        else:
            from . import tone_speech

            audio = tone_speech(text.split() or ["silence"], sample_rate=24000)
        if response_format == "pcm":
            pcm = audio.resample(24000).samples
            return (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes(), "audio/pcm"
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.clip(audio.samples, -1, 1), audio.sample_rate, format="WAV", subtype="PCM_16")
        return buf.getvalue(), "audio/wav"


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
            return None

        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            headers = {"Retry-After": "0"} if status == 429 else {}
            kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
            self._send_json(status, {"error": {"message": message, "type": kind, "code": code}}, headers)

        def do_GET(self) -> None:  # noqa: N802
            record = RecordedRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
            server.requests.append(record)
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
            else:
                record.status = 404
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()})
            ctype = self.headers.get("Content-Type", "")
            try:
                if ctype.startswith("multipart/form-data"):
                    record.form, record.files = parse_multipart(body, ctype)
                elif body:
                    record.json = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                record.status = 400
                server.requests.append(record)
                self._error(400, f"bad request body: {exc}")
                return
            server.requests.append(record)
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                record.status = 401
                self._error(401, "Incorrect API key provided", "invalid_api_key")
                return
            status, delay = server._next_fault()
            if delay:
                time.sleep(delay)
            if status:
                record.status = status
                self._error(status, f"scripted failure {status}")
                return
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/v1/chat/completions":
                self._chat(record)
            elif path == "/v1/audio/transcriptions":
                self._transcribe(record)
            elif path == "/v1/audio/speech":
                self._speech(record)
            else:
                record.status = 404
                self._error(404, f"no route {self.path}")

        def _chat(self, record: RecordedRequest) -> None:
            request = record.json or {}
            if not request.get("messages"):
                record.status = 400
                self._error(400, "messages is required")
                return
            answer = server._next_answer(request)
            model = request.get("model", "test-model")
            created = int(time.time())
            if not request.get("stream"):
                self._send_json(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            pieces = [p for p in _split_keep_spaces(answer)]

            def event(delta: dict, finish: str | None) -> bytes:
                chunk = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(chunk)}\n\n".encode()

            try:
                self.wfile.write(event({"role": "assistant", "content": ""}, None))
                for piece in pieces:
                    if server.stream_delay:
                        time.sleep(server.stream_delay)
                    self.wfile.write(event({"content": piece}, None))
                    self.wfile.flush()
                self.wfile.write(event({}, "stop"))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _transcribe(self, record: RecordedRequest) -> None:
            if "file" not in record.files:
                record.status = 400
                self._error(400, "file is required")
                return
            text = server._next_transcript()
            fmt = record.form.get("response_format", "json")
            if fmt == "text":
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            payload: dict[str, Any] = {"text": text}
            if fmt == "verbose_json":
                words, t = [], 0.0
                for w in text.split():
                    words.append({"word": w, "start": t, "end": t + 0.3})
                    t += 0.4
                payload.update({"language": "english", "duration": t, "words": words, "segments": []})
            self._send_json(200, payload)

        def _speech(self, record: RecordedRequest) -> None:
            request = record.json or {}
            text = str(request.get("input") or "")
            if not text.strip():
                record.status = 400
                self._error(400, "input is required")
                return
            fmt = request.get("response_format") or "mp3"
            if fmt not in ("wav", "pcm"):
                record.status = 400
                self._error(400, f"this test server only makes wav or pcm, not {fmt}")
                return
            data, ctype = server._speech_bytes(text, fmt)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _split_keep_spaces(text: str) -> list[str]:
    """Split into word pieces that concatenate back to ``text`` (like streamed tokens)."""
    pieces, current = [], ""
    for ch in text:
        if ch == " " and current.strip():
            pieces.append(current)
            current = ""
        current += ch
    if current:
        pieces.append(current)
    return pieces
