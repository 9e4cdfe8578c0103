"""Saved avatars: a portrait plus its voice, persona and animator settings, kept in the store.

The portrait is stored re-encoded as PNG (downscaled to ``max_portrait_size``), never as the
bytes a client sent, together with a small JPEG thumbnail for galleries. Creating an avatar or
changing its portrait checks that a face can be animated and warms the per-portrait preprocessing
cache, so the first video of a saved avatar starts at once.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..io import load_image
from ..values import Portrait
from .engine import Engine, RenderSpec
from .errors import ApiError, not_found
from .store import Store, new_id
from .uploads import decode_image

__all__ = ["AvatarService", "MAX_NAME_CHARS", "MAX_PERSONA_CHARS"]

MAX_NAME_CHARS = 80
MAX_PERSONA_CHARS = 2000
THUMB_SIZE = 256
EDITABLE = ("name", "persona", "tts", "voice", "animator", "animator_options", "fps", "emotion")


class AvatarService:
    """Create, read, update and delete saved avatars (blocking methods: run them in the request pool)."""

    def __init__(self, engine: Engine, store: Store) -> None:
        self.engine, self.store = engine, store

    # -- reading ---------------------------------------------------------------------------------
    def get(self, aid: str) -> dict[str, Any]:
        record = self.store.get("avatar", aid)
        if record is None:
            raise not_found("avatar", aid)
        return record

    def list(self) -> list[dict[str, Any]]:
        records = [r for r in (self.store.get("avatar", i) for i in self.store.ids("avatar")) if r]
        return sorted(records, key=lambda r: r.get("created_at", 0), reverse=True)

    def portrait(self, aid: str) -> Portrait:
        """The stored portrait, decoded."""
        self.get(aid)
        path = self.store.open_file("avatar", aid, "portrait.png")
        if path is None:
            raise not_found("avatar portrait", aid)
        return load_image(path.read_bytes())

    def spec(self, record: Mapping[str, Any], **overrides: Any) -> RenderSpec:
        """The avatar's render choices, with a request's non-empty ``overrides`` on top, checked."""
        choices = {k: record.get(k) for k in ("tts", "voice", "animator", "fps", "emotion")}
        choices["animator_options"] = dict(record.get("animator_options") or {})
        for key, value in overrides.items():
            if value not in (None, ""):
                choices[key] = value
        if overrides.get("animator") and overrides.get("animator") != record.get("animator"):
            choices["animator_options"] = {}  # options belong to the avatar's own animator
        return self.engine.render_spec(**choices)

    # -- writing ---------------------------------------------------------------------------------
    def create(self, image: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Check the portrait and the settings, store both, warm the preprocessing cache.

        Raises:
            ImageError, NoFaceError...: the portrait cannot be used (nothing is stored).
            ConfigError: a setting is invalid.
            ApiError: 409 when the server already has ``max_avatars`` avatars.
        """
        if len(self.store.ids("avatar")) >= self.engine.settings.max_avatars:
            raise ApiError(409, "TooManyAvatars",
                           f"this server keeps at most {self.engine.settings.max_avatars} avatars; delete some first")
        settings = self._settings({}, fields)
        spec = self.spec(settings)
        portrait = self._checked_portrait(image, spec)
        aid = new_id("avatar")
        now = time.time()
        record = {"id": aid, "object": "avatar", "created_at": now, "updated_at": now, "version": 1, **settings,
                  "portrait": {"width": portrait.size[0], "height": portrait.size[1]}}
        self._store_portrait(aid, portrait)
        self.store.put("avatar", aid, record)
        return record

    def update(self, aid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change some settings (name, persona, voice, animator...)."""
        record = self.get(aid)
        settings = self._settings(record, fields)
        self.spec(settings)  # raises when the combination is invalid
        return self.store.update("avatar", aid, lambda r: r.update(
            settings, updated_at=time.time(), version=int(r.get("version", 1)) + 1))

    def replace_portrait(self, aid: str, image: bytes) -> dict[str, Any]:
        """Replace the portrait (checked like a new one)."""
        record = self.get(aid)
        portrait = self._checked_portrait(image, self.spec(record))
        self._store_portrait(aid, portrait)
        return self.store.update("avatar", aid, lambda r: r.update(
            portrait={"width": portrait.size[0], "height": portrait.size[1]}, updated_at=time.time(),
            version=int(r.get("version", 1)) + 1))

    def delete(self, aid: str) -> None:
        if not self.store.delete("avatar", aid):
            raise not_found("avatar", aid)

    # -- helpers ---------------------------------------------------------------------------------
    def _settings(self, record: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - set(EDITABLE))
        if unknown:
            raise ConfigError(f"unknown avatar field(s): {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
        out = {k: record.get(k) for k in EDITABLE}
        out["animator_options"] = dict(record.get("animator_options") or {})
        for key, value in fields.items():
            if value is None:
                continue
            if key in ("name", "persona", "tts", "voice", "animator", "emotion") and not isinstance(value, str):
                raise ConfigError(f"avatar field {key} must be a string")
            if key == "animator_options" and not isinstance(value, Mapping):
                raise ConfigError("animator_options must be a JSON object")
            out[key] = value
        if out.get("fps") is not None:
            try:
                out["fps"] = float(out["fps"])
            except (TypeError, ValueError):
                raise ConfigError(f"fps must be a number, got {out['fps']!r}") from None
        name = (out.get("name") or "").strip()
        if len(name) > MAX_NAME_CHARS:
            raise ConfigError(f"the name is over {MAX_NAME_CHARS} characters")
        out["name"] = name or "Avatar"
        persona = (out.get("persona") or "").strip()
        if len(persona) > MAX_PERSONA_CHARS:
            raise ConfigError(f"the persona is over {MAX_PERSONA_CHARS} characters; keep it to a short paragraph")
        out["persona"] = persona
        if out.get("animator") == "":
            out["animator"] = None
        return out

    def _checked_portrait(self, image: bytes, spec: RenderSpec) -> Portrait:
        portrait = decode_image(image, max_pixels=self.engine.settings.max_image_pixels)
        avatar = self.engine.avatar(portrait, spec)  # downscales to max_portrait_size
        self.engine.prepare(avatar)  # finds the face (NoFaceError...) and caches the preprocessing
        return avatar.portrait

    def _store_portrait(self, aid: str, portrait: Portrait) -> None:
        from PIL import Image

        im = Image.fromarray(portrait.image)
        path = self.store.file_path("avatar", aid, "portrait.png")
        im.save(path, format="PNG", optimize=False)
        self.store.commit_file("avatar", aid, "portrait.png")
        thumb = im.copy()
        thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buf = io.BytesIO()
        thumb.save(buf, format="JPEG", quality=85)
        self.store.file_path("avatar", aid, "thumb.jpg").write_bytes(buf.getvalue())
        self.store.commit_file("avatar", aid, "thumb.jpg")
