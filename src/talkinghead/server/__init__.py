"""``talkinghead serve``: the HTTP API (render jobs, saved avatars, conversations) and the web app.

>>> from talkinghead.server import ServerSettings, create_app
>>> app = create_app(ServerSettings(data_dir="/srv/talkinghead", token="s3cret"))   # doctest: +SKIP

Importing this package is light; FastAPI loads when :func:`create_app` is called.
"""

from __future__ import annotations

from .app import ServerState, create_app
from .settings import ServerSettings, default_data_dir
from .store import LocalStore, Store

__all__ = ["create_app", "ServerSettings", "ServerState", "Store", "LocalStore", "default_data_dir"]
