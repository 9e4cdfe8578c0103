"""The HTTP routes, one module per area; ``common`` holds what they share."""

from . import avatars, conversations, live, meta, videos, web

__all__ = ["avatars", "conversations", "live", "meta", "videos", "web"]
