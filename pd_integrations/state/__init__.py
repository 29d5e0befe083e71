"""Alert state: kept in this process, or shared by every process and host through Redis.

- :mod:`.base`: :class:`StateBackend`, the interface, and the values it trades in;
- :mod:`.memory`: :class:`MemoryState`, the default;
- :mod:`.redis`: ``RedisState``, shared through Redis (the ``redis`` extra, imported
  only when a Redis URL is opened).

:func:`open_state` picks one from a URL: ``memory://`` or nothing for the process,
``redis://``, ``rediss://`` or ``unix://`` for Redis.
"""

from __future__ import annotations

from pd_integrations.errors import ConfigurationError

from .base import (
    DEFAULT_ALERT_TTL,
    DEFAULT_LEASE,
    HEALTH_TTL,
    MEMORY_SCHEMES,
    REDIS_SCHEMES,
    Alert,
    Edge,
    HealthState,
    Owed,
    Raised,
    StateBackend,
    next_health,
    routing_key_hash,
    safe_url,
    state_backend_kind,
)
from .memory import MemoryState

__all__ = [
    "DEFAULT_ALERT_TTL",
    "DEFAULT_LEASE",
    "HEALTH_TTL",
    "MEMORY_SCHEMES",
    "REDIS_SCHEMES",
    "Alert",
    "Edge",
    "HealthState",
    "MemoryState",
    "Owed",
    "Raised",
    "StateBackend",
    "next_health",
    "open_state",
    "routing_key_hash",
    "safe_url",
    "state_backend_kind",
]


def open_state(url: str | None, routing_key: str) -> StateBackend:
    """The state backend ``url`` names: ``None``/``memory://`` in-process, else Redis.

    :raises ConfigurationError: for an unknown scheme, or a Redis URL without the
        ``redis`` package installed.
    """
    if state_backend_kind(url) == "memory":
        return MemoryState(routing_key)
    assert url is not None
    url = url.strip()
    try:
        from .redis import RedisState  # the redis extra is optional: import late
    except ImportError as error:
        raise ConfigurationError(
            f"state URL {safe_url(url)!r} needs the redis package: "
            "pip install 'pd-integrations[redis]'"
        ) from error
    return RedisState(url, routing_key)
