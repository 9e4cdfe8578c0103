"""The server app on Ray Serve: replicas of :func:`~talkinghead.server.create_app` behind Serve's proxy.

``pip install 'talkinghead[server,ray-serve]'``; see ``docs/server.md`` ("Ray Serve").

Each replica builds its own app (its own models and job threads) with one shared :class:`RayStore`:
records live in a named Ray actor (one writer, so a read-modify-write never loses an update) and
files in a folder every replica sees (``data_dir``: local disk on one machine, a shared mount on a
cluster). Serve's router sends each request to a lightly loaded replica, so new jobs and
conversations spread over the replicas, and any replica answers any status poll, download,
avatar or conversation request through the store. A job runs on the replica that accepted it.

>>> from talkinghead.server import ServerSettings
>>> from talkinghead.server.ray_serve import deployment
>>> app = deployment(ServerSettings(data_dir="/mnt/shared/talkinghead"), num_replicas=4)  # doctest: +SKIP
>>> ray.serve.run(app, route_prefix="/")                                                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError
from .settings import ServerSettings
from .store import FILE_NAMES, LocalStore, UnknownIdError, check_id

log = logging.getLogger(__name__)

__all__ = ["RayStore", "deployment", "build_app", "STORE_ACTOR"]

#: Name of the actor holding the records (in the Serve application's namespace).
STORE_ACTOR = "talkinghead-store"


def _ray():
    try:
        import ray
        from ray import serve  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("ray[serve]", "ray-serve", "the Ray Serve deployment") from exc
    return ray


class StoreActor:
    """Holds the records (a :class:`LocalStore` in ``root``) with a version per record."""

    def __init__(self, root: str) -> None:
        self.store = LocalStore(root)
        self.versions: dict[tuple[str, str], int] = {}

    def put(self, kind: str, rid: str, record: dict[str, Any]) -> None:
        self.store.put(kind, rid, record)
        self.versions[(kind, rid)] = self.versions.get((kind, rid), 0) + 1

    def get(self, kind: str, rid: str) -> tuple[dict[str, Any] | None, int]:
        return self.store.get(kind, rid), self.versions.get((kind, rid), 0)

    def compare_and_set(self, kind: str, rid: str, version: int, record: dict[str, Any]) -> bool | None:
        """Replace the record if nobody changed it since ``version``; None if it is gone."""
        if self.store.get(kind, rid) is None:
            return None
        if self.versions.get((kind, rid), 0) != version:
            return False
        self.put(kind, rid, record)
        return True

    def delete(self, kind: str, rid: str) -> bool:
        self.versions.pop((kind, rid), None)
        return self.store.delete(kind, rid)

    def ids(self, kind: str) -> list[str]:
        return self.store.ids(kind)


class RayStore:
    """A :class:`~talkinghead.server.store.Store` shared by every replica: records in the Ray actor
    :data:`STORE_ACTOR` (created on first use), files under ``root`` (a folder every replica sees).

    ``update`` is a compare-and-set loop: ``change`` runs on a copy of the current record and the
    result is stored only if no other replica changed the record meanwhile (else it runs again on
    the newer record).
    """

    def __init__(self, root: str | os.PathLike, *, actor_name: str = STORE_ACTOR, namespace: str | None = None) -> None:
        ray = _ray()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._ray = ray
        self.actor = (
            ray.remote(StoreActor)
            .options(name=actor_name, namespace=namespace, get_if_exists=True, lifetime="detached", num_cpus=0)
            .remote(os.fspath(self.root))
        )

    def _call(self, method: str, *args: Any) -> Any:
        return self._ray.get(getattr(self.actor, method).remote(*args))

    def put(self, kind: str, rid: str, record: dict[str, Any]) -> None:
        check_id(kind, rid)
        self._call("put", kind, rid, record)

    def get(self, kind: str, rid: str) -> dict[str, Any] | None:
        try:
            check_id(kind, rid)
        except UnknownIdError:
            return None
        return self._call("get", kind, rid)[0]

    def update(self, kind: str, rid: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        for _ in range(100):
            current, version = self._call("get", kind, rid)
            if current is None:
                raise UnknownIdError(rid)
            draft = copy.deepcopy(current)
            result = change(draft)
            record = draft if result is None else result
            done = self._call("compare_and_set", kind, rid, version, record)
            if done is None:
                raise UnknownIdError(rid)
            if done:
                return copy.deepcopy(record)
        raise RuntimeError(f"{kind} {rid}: too many concurrent updates")

    def delete(self, kind: str, rid: str) -> bool:
        try:
            check_id(kind, rid)
        except UnknownIdError:
            return False
        return bool(self._call("delete", kind, rid))

    def ids(self, kind: str) -> list[str]:
        return list(self._call("ids", kind))

    def file_path(self, kind: str, rid: str, name: str) -> Path:
        if name not in FILE_NAMES:
            raise ValueError(f"unknown record file name {name!r}")
        folder = self.root / kind / check_id(kind, rid)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def commit_file(self, kind: str, rid: str, name: str) -> None:
        return None  # written in place in the shared folder

    def open_file(self, kind: str, rid: str, name: str) -> Path | None:
        if name not in FILE_NAMES:
            return None
        try:
            path = self.root / kind / check_id(kind, rid) / name
        except UnknownIdError:
            return None
        return path if path.is_file() else None


class _Replica:
    """One Serve replica: builds the app with the shared store (plug-ins loaded first)."""

    def __init__(self, settings: ServerSettings, plugins: Sequence[str], namespace: str | None) -> None:
        from ..batch.render import load_plugins

        load_plugins(plugins)
        self.settings = settings
        self.store = RayStore(settings.data_dir, namespace=namespace)
        self.replica = _replica_tag()

    def __serve_build_asgi_app__(self):
        from . import create_app

        app = create_app(self.settings, store=self.store)
        tag = self.replica.encode()

        async def tagged(scope, receive, send):  # says which replica answered (routing checks)
            async def send_tagged(message):
                if message.get("type") == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"x-talkinghead-replica", tag)]}
                await send(message)

            await app(scope, receive, send_tagged if scope.get("type") == "http" else send)

        return tagged


def _replica_tag() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_tag
    except Exception:  # outside Serve (tests of the class itself)
        return f"pid-{os.getpid()}"


def deployment(
    settings: ServerSettings | None = None,
    *,
    num_replicas: int | str = 2,
    autoscaling: Mapping[str, Any] | None = None,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
    max_ongoing_requests: int = 32,
    plugins: Sequence[str] = (),
    namespace: str | None = None,
):
    """A Ray Serve application of the server: ``serve.run(deployment(settings), route_prefix="/")``.

    Args:
        settings: the server settings of every replica; ``data_dir`` must be a folder every replica
            sees (the records' files live there).
        num_replicas: replicas to run (ignored when ``autoscaling`` is given).
        autoscaling: a Serve ``autoscaling_config`` (``{"min_replicas": 1, "max_replicas": 8,
            "target_ongoing_requests": 4}``).
        num_gpus, num_cpus: resources per replica (``num_gpus=1``: one replica per GPU).
        max_ongoing_requests: requests a replica handles at once before Serve sends them elsewhere;
            render jobs themselves queue inside the replica (``settings.job_workers``).
        plugins: import strings of plug-ins to register in every replica.
        namespace: Ray namespace of the store actor (default: the application's).

    Raises:
        MissingDependencyError: Ray Serve is not installed (``pip install 'talkinghead[ray-serve]'``).
    """
    _ray()
    from ray import serve

    settings = settings or ServerSettings()
    options: dict[str, Any] = {
        "name": "talkinghead",
        "max_ongoing_requests": int(max_ongoing_requests),
        "ray_actor_options": {"num_cpus": float(num_cpus), "num_gpus": float(num_gpus)},
    }
    if autoscaling:
        options["autoscaling_config"] = dict(autoscaling)
    else:
        if int(num_replicas) < 1:
            raise ConfigError(f"num_replicas must be at least 1, got {num_replicas}")
        options["num_replicas"] = int(num_replicas)
    ingress = serve.ingress()(_Replica)
    return serve.deployment(**options)(ingress).bind(settings, tuple(plugins), namespace)


def build_app(args: Mapping[str, Any]):
    """Entry point for ``serve run talkinghead.server.ray_serve:build_app data_dir=/mnt/th num_replicas=4``
    and for Serve config files (``import_path: talkinghead.server.ray_serve:build_app`` with ``args``).

    ``args``: ``num_replicas``, ``num_gpus``, ``num_cpus``, ``max_ongoing_requests``, ``plugins``
    (comma-separated) and any :class:`ServerSettings` field (``data_dir``, ``token``, ``job_workers``…).
    """
    args = dict(args)
    kw: dict[str, Any] = {}
    for key, kind in (("num_replicas", int), ("num_gpus", float), ("num_cpus", float), ("max_ongoing_requests", int)):
        if key in args:
            kw[key] = kind(args.pop(key))
    plugins = args.pop("plugins", "")
    kw["plugins"] = [p for p in plugins.split(",") if p] if isinstance(plugins, str) else list(plugins)
    if "autoscaling" in args:
        kw["autoscaling"] = args.pop("autoscaling")
    return deployment(ServerSettings(**args) if args else None, **kw)
