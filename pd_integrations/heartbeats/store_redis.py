"""The Redis heartbeat store (the ``redis`` extra): check-ins shared by every host.

Keys live under ``<prefix>:heartbeats:{<namespace>}:`` with ``<prefix>`` from the state
URL's ``prefix`` parameter (as for alert state) and ``<namespace>`` the routing key's
hash plus the environment, so two apps or two environments on one Redis never see each
other's monitors. A record is updated with WATCH/MULTI (optimistic, retried), the
watchdog lease is ``SET NX PX`` renewed by its owner only (one small Lua script).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.exceptions import WatchError

from .store import Change, HeartbeatStore, Record

__all__ = ["RedisStore"]

R = TypeVar("R")
DEFAULT_PREFIX = "pd_integrations"
SOCKET_TIMEOUT = 2.0
RECORD_TTL_SECONDS = 90 * 24 * 3600
_OWN_PARAMS = ("prefix", "local_window")
_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    prefix = dict(params).get("prefix") or DEFAULT_PREFIX
    query = urlencode([(key, value) for key, value in params if key not in _OWN_PARAMS])
    return urlunsplit(parts._replace(query=query)), prefix


class RedisStore(HeartbeatStore):
    def __init__(self, url: str, namespace: str, client: Any = None) -> None:
        plain, prefix = _split(url)
        self._redis: Any = client or redis.Redis.from_url(
            plain, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
        self._base = f"{prefix}:heartbeats:{{{namespace}}}:"
        self.description = f"redis (prefix {self._base})"
        self._lease_script = self._redis.register_script(_LEASE)
        self._release_script = self._redis.register_script(_RELEASE)

    def _key(self, slug: str) -> str:
        return f"{self._base}monitor:{slug}"

    def transact(self, slug: str, change: Change[R]) -> R:
        key = self._key(slug)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    new, result = change(json.loads(raw) if raw else None)
                    pipe.multi()
                    if new is not None:
                        pipe.set(key, json.dumps(new), ex=RECORD_TTL_SECONDS)
                        pipe.sadd(self._base + "monitors", slug)
                    pipe.execute()
                    return result
                except WatchError:
                    continue  # another process changed it meanwhile: decide again

    def load(self, slug: str) -> Record | None:
        raw = self._redis.get(self._key(slug))
        return json.loads(raw) if raw else None

    def slugs(self) -> list[str]:
        members = self._redis.smembers(self._base + "monitors")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def acquire_lease(self, owner: str, ttl: float, now: float) -> bool:
        return bool(self._lease_script(keys=[self._base + "lease"], args=[owner, int(ttl * 1000)]))

    def release_lease(self, owner: str) -> None:
        self._release_script(keys=[self._base + "lease"], args=[owner])

    def close(self) -> None:
        self._redis.close()
