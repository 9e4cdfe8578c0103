"""The test HTTP server: clients that hang up are not errors; other handler failures are logged."""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from talkinghead.testing.openai_server import QuietHTTPServer


@pytest.mark.parametrize("exc,logged", [(BrokenPipeError, False), (ConnectionResetError, False), (ValueError, True)])
def test_quiet_server_reports_only_real_failures(exc, logged, caplog, capfd):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            raise exc("boom")

        def log_message(self, *args):
            pass

    server = QuietHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="talkinghead.testing.openai_server"):
            with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
                urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5)
            server.shutdown()
            thread.join(5)
    finally:
        server.server_close()
    assert ("request from" in caplog.text) is logged
    assert "Traceback" not in capfd.readouterr().err  # nothing printed by socketserver itself
