"""Run an ASGI app on a real uvicorn server in a thread, on 127.0.0.1 and a free port — for tests,
browser tests and benchmarks that need real HTTP (range requests, a browser, concurrent clients)::

    with AppServer(create_app(settings)) as server:
        httpx.get(server.url + "/healthz")

Start-up and shut-down are bounded in time; leaving the block stops the server.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

__all__ = ["AppServer"]


class AppServer:
    """An ASGI app served by uvicorn on ``127.0.0.1`` in a background thread.

    Args:
        app: the ASGI application.
        start_timeout: seconds to wait for the server to accept connections.
        stop_timeout: seconds to wait for it to stop.
    """

    def __init__(self, app: Any, *, start_timeout: float = 30.0, stop_timeout: float = 30.0) -> None:
        self.app = app
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self._server = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="talkinghead-app-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the app server stopped while starting; see the log above")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the app server did not start within {self.start_timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.stop_timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
