"""The Redis backend of :mod:`pd_integrations.state` (install the ``redis`` extra).

Every decision that several processes could race on is one Lua script, so it is atomic
in Redis: opening an alert, counting an occurrence, escalating, refreshing, auto-resolving,
flipping a health check, spending the rate budget, and recording, renewing or taking over
an event owed to PagerDuty (a pending trigger in its alert's hash; a resolve or
acknowledge in the ``owed`` sorted set, scored by its lease's end, with its owner in
``owed_by``). Keys live under
``<prefix>:{<hash of the routing key>}:`` (the braces keep one routing key's keys in one
Redis Cluster slot), and every key has a TTL.

When Redis is unreachable or answers with an error, the state falls back to a local
:class:`~pd_integrations.state.memory.MemoryState`, logs one warning for the outage, and tries
Redis again after a back-off that doubles up to ``max_retry_after``. At most one caller
at a time probes a Redis that failed; the others keep using the local state meanwhile.
The local state starts empty rather than from a copy of Redis on purpose: a stale copy
could hold an alert another worker has resolved since and suppress its next page, while
an empty one at worst repeats a trigger that PagerDuty merges into the open alert.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from pd_integrations.delivery import lifecycle, ratelimit
from pd_integrations.delivery.ratelimit import WINDOW_SECONDS, RateBudget
from pd_integrations.errors import ConfigurationError
from pd_integrations.events import Severity

from .base import (
    DEFAULT_ALERT_TTL,
    DEFAULT_LEASE,
    HEALTH_TTL,
    Alert,
    Edge,
    HealthState,
    Owed,
    Raised,
    StateBackend,
    routing_key_hash,
    safe_url,
)
from .memory import MemoryState

_log = logging.getLogger("pd_integrations.state")

DEFAULT_PREFIX = "pd_integrations"
DEFAULT_SOCKET_TIMEOUT = 0.2
"""Seconds: connect and read. A request thread waits at most this long for Redis."""
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 30.0
DEFAULT_LOCAL_WINDOW = 2.0
"""Seconds a repeat of an alert known open is counted in the process between merges."""
PREFIX_PARAM = "prefix"
LOCAL_WINDOW_PARAM = "local_window"
LEASE_PARAM = "lease"
# Open alerts remembered for the local window at most; beyond, the memory starts over.
_RECENT_LIMIT = 10_000


class _Recent:
    """An alert this process saw open in Redis, and the repeats it counted since."""

    __slots__ = ("last_seen", "occurrences", "pending", "rank", "refresh_at", "ttl_ms", "until")

    def __init__(
        self, until: float, rank: int, occurrences: int, ttl_ms: int, refresh_at: float
    ) -> None:
        self.until = until
        self.rank = rank
        self.occurrences = occurrences
        self.pending = 0
        self.last_seen = 0.0
        self.ttl_ms = ttl_ms
        # Wall-clock time from which Redis may decide a refresh: a repeat from then on is
        # taken to Redis even inside the window. Infinity when refreshing is off.
        self.refresh_at = refresh_at


T = TypeVar("T")

# Records an owed resolve or acknowledge (member 'resolve:<key>'...) for the caller, with
# its lease on Redis's clock. Prepended to the scripts that need it.
_OWE = """
local function owe(owed, owners, member, owner, lease, ttl)
  local t = redis.call('TIME')
  local lease_until = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(lease)
  redis.call('ZADD', owed, lease_until, member)
  redis.call('HSET', owners, member, owner)
  if redis.call('PTTL', owed) < tonumber(ttl) then redis.call('PEXPIRE', owed, ttl) end
  if redis.call('PTTL', owners) < tonumber(ttl) then redis.call('PEXPIRE', owners, ttl) end
end
local function settle(owed, owners, member)
  redis.call('ZREM', owed, member)
  redis.call('HDEL', owners, member)
end
"""

# KEYS: alert hash, index, pending set, owed set, owners; ARGV: dedup key, now, ttl ms,
# rank, severity, summary, alert_type, component, identifier, auto_resolve, occurrences to record,
# refresh_after seconds (0: off), owner, lease seconds. Returns {send, occurrences,
# refresh_at, severity}: refresh_at is the time (text, '' when refreshing is off) from
# which a repeat is sent again; severity is the stored one, set only when this call is a
# refresh or takes over a trigger whose owner's lease expired.
# A new alert is 'pending' until its trigger is confirmed: the caller owns its delivery
# for the lease (Redis's clock, so skewed hosts agree on when it expires). A new alert
# cancels a resolve or acknowledge still owed for the previous one: sent after this
# trigger by a process taking it over, that resolve would close the new incident.
_RAISE = (
    _OWE
    + """
if redis.replicate_commands then redis.replicate_commands() end
local h, index, pending = KEYS[1], KEYS[2], KEYS[3]
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local rank = tonumber(ARGV[4])
local refresh = tonumber(ARGV[12])
local t = redis.call('TIME')
local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
local current = redis.call('HGET', h, 'rank')
local send, occurrences, severity, own = 0, tonumber(ARGV[11]), '', false
if not current then
  redis.call('HSET', h, 'rank', rank, 'severity', ARGV[5], 'summary', ARGV[6],
    'alert_type', ARGV[7], 'component', ARGV[8], 'identifier', ARGV[9],
    'auto_resolve', ARGV[10], 'first_seen', ARGV[2], 'last_seen', ARGV[2],
    'occurrences', occurrences, 'acknowledged', 0, 'status', 'pending')
  send, own = 1, true
  settle(KEYS[4], KEYS[5], 'resolve:' .. ARGV[1])
  settle(KEYS[4], KEYS[5], 'acknowledge:' .. ARGV[1])
else
  occurrences = redis.call('HINCRBY', h, 'occurrences', occurrences)
  redis.call('HSET', h, 'last_seen', ARGV[2])
  local unsent = redis.call('HGET', h, 'status') == 'pending'
  if rank > tonumber(current) then
    redis.call('HSET', h, 'rank', rank, 'severity', ARGV[5], 'summary', ARGV[6])
    send, own = 1, unsent
  elseif unsent and clock >= tonumber(redis.call('HGET', h, 'lease_until') or '0') then
    send, own = 1, true
    severity = redis.call('HGET', h, 'severity')
  elseif refresh > 0 and now >= tonumber(redis.call('HGET', h, 'refresh_at') or '0') then
    send = 1
    severity = redis.call('HGET', h, 'severity')
  end
end
if own then
  local lease_until = clock + tonumber(ARGV[14])
  redis.call('HSET', h, 'owner', ARGV[13], 'lease_until', string.format('%.17g', lease_until))
  redis.call('ZADD', pending, lease_until, ARGV[1])
  if redis.call('PTTL', pending) < ttl then redis.call('PEXPIRE', pending, ttl) end
end
local refresh_at = ''
if refresh > 0 then
  if send == 1 then
    refresh_at = string.format('%.17g', now + refresh)
    redis.call('HSET', h, 'refresh_at', refresh_at)
  else
    refresh_at = redis.call('HGET', h, 'refresh_at') or '0'
  end
end
redis.call('PEXPIRE', h, ttl)
redis.call('ZADD', index, now + ttl / 1000, ARGV[1])
if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
return {send, occurrences, refresh_at, severity}
"""
)

# KEYS: alert hash, pending set; ARGV: dedup key. PagerDuty accepted the trigger.
_CONFIRM = """
if redis.call('HGET', KEYS[1], 'status') == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'open')
  redis.call('HDEL', KEYS[1], 'owner', 'lease_until')
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: pending set, then one alert hash per key; ARGV: owner, lease seconds, then the
# dedup keys. Extends the lease of every alert this owner still holds pending.
_RENEW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local lease_until = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[2])
local renewed = 0
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'status') == 'pending'
      and redis.call('HGET', KEYS[i], 'owner') == ARGV[1] then
    redis.call('HSET', KEYS[i], 'lease_until', string.format('%.17g', lease_until))
    redis.call('ZADD', KEYS[1], lease_until, ARGV[i + 1])
    renewed = renewed + 1
  end
end
return renewed
"""

# KEYS: alert hash, pending set; ARGV: dedup key, owner, lease seconds. Takes over the
# trigger of a pending alert whose lease expired: returns its fields (HGETALL), else {}.
_CLAIM = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {}
end
local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if clock < lease_until then
  redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
  return {}
end
lease_until = clock + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'lease_until', string.format('%.17g', lease_until))
redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: alert hash, index; ARGV: dedup key, occurrences counted locally, the last one's
# time, ttl ms. Adds them to the alert if it is still open and keeps it open for the ttl,
# as the repeats would have. Returns the fleet-wide occurrences, or 0 when not open or
# when its trigger is owed by a process whose lease expired (the next occurrence then
# goes to Redis, which hands that trigger over).
_PUSH = """
if redis.replicate_commands then redis.replicate_commands() end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local occurrences = redis.call('HINCRBY', KEYS[1], 'occurrences', tonumber(ARGV[2]))
local last = tonumber(ARGV[3])
if tonumber(redis.call('HGET', KEYS[1], 'last_seen') or 0) < last then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[3])
end
local ttl = tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], last + ttl / 1000, ARGV[1])
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if redis.call('HGET', KEYS[1], 'status') == 'pending' then
  local t = redis.call('TIME')
  local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
  if clock >= tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') then return 0 end
end
return occurrences
"""

# KEYS: alert hash, owed set, owners; ARGV: dedup key, owe (1/0), owner, lease, ttl ms.
# Returns 1 when the alert was open (then, with owe, the acknowledge is owed by owner).
_ACKNOWLEDGE = (
    _OWE
    + """
if redis.replicate_commands then redis.replicate_commands() end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'acknowledged', 1)
if ARGV[2] == '1' then
  owe(KEYS[2], KEYS[3], 'acknowledge:' .. ARGV[1], ARGV[3], ARGV[4], ARGV[5])
end
return 1
"""
)

# KEYS: alert hash, index, pending set, owed set, owners; ARGV: dedup key, owe (1/0),
# owner, lease, ttl ms. Closes the alert (an acknowledge still owed is moot then); with
# owe, its resolve is owed by owner, else (PagerDuty resolved it) no resolve is owed.
# Returns 1 when the alert was open.
_RESOLVE = (
    _OWE
    + """
if redis.replicate_commands then redis.replicate_commands() end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
settle(KEYS[4], KEYS[5], 'acknowledge:' .. ARGV[1])
if ARGV[2] == '1' then
  owe(KEYS[4], KEYS[5], 'resolve:' .. ARGV[1], ARGV[3], ARGV[4], ARGV[5])
else
  settle(KEYS[4], KEYS[5], 'resolve:' .. ARGV[1])
end
return existed
"""
)

# KEYS: alert hash, index, pending set, owed set, owners; ARGV: dedup key, now,
# quiet_for, owner, lease, ttl ms. Returns a string: '-1' not open, '0' closed by this
# call (its resolve now owed by owner), else the seconds still to wait (strings keep
# fractions).
_RESOLVE_IF_QUIET = (
    _OWE
    + """
if redis.replicate_commands then redis.replicate_commands() end
local last = redis.call('HGET', KEYS[1], 'last_seen')
if not last then return '-1' end
local remaining = tonumber(last) + tonumber(ARGV[3]) - tonumber(ARGV[2])
if remaining > 0.001 then return tostring(remaining) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
settle(KEYS[4], KEYS[5], 'acknowledge:' .. ARGV[1])
owe(KEYS[4], KEYS[5], 'resolve:' .. ARGV[1], ARGV[4], ARGV[5], ARGV[6])
return '0'
"""
)

# KEYS: owed set, owners; ARGV: member. PagerDuty accepted (or refused for good) it.
_CONFIRM_OWED = (
    _OWE
    + """
settle(KEYS[1], KEYS[2], ARGV[1])
return 1
"""
)

# KEYS: owed set, owners; ARGV: owner, lease, then members. Extends the lease of every
# event this owner still holds.
_RENEW_OWED = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local lease_until = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[2])
local renewed = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1]
      and redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], lease_until, ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""

# KEYS: owed set, owners; ARGV: owner, lease, limit. Takes over the owed events whose
# lease expired (at most limit): returns their members, now owed by owner.
_CLAIM_OWED = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', clock, 'LIMIT', 0, tonumber(ARGV[3]))
local lease_until = clock + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], lease_until, member)
  redis.call('HSET', KEYS[2], member, ARGV[1])
end
return due
"""

# KEYS: health hash; ARGV: healthy (1/0), failure threshold, recovery threshold, ttl ms.
# The same rule as state.next_health. Returns {failures, successes, down, edge}.
_OBSERVE_HEALTH = """
local h = KEYS[1]
local failures = tonumber(redis.call('HGET', h, 'failures') or '0')
local successes = tonumber(redis.call('HGET', h, 'successes') or '0')
local down = redis.call('HGET', h, 'down') == '1'
local edge = ''
if ARGV[1] == '1' then
  failures, successes = 0, successes + 1
  if down and successes >= tonumber(ARGV[3]) then down, edge = false, 'resolve' end
else
  failures, successes = failures + 1, 0
  if not down and failures >= tonumber(ARGV[2]) then down, edge = true, 'trigger' end
end
redis.call('HSET', h, 'failures', failures, 'successes', successes, 'down', down and 1 or 0)
redis.call('PEXPIRE', h, ARGV[4])
return {failures, successes, down and 1 or 0, edge}
"""

# KEYS: the window's sorted set; ARGV: limit, window in microseconds, a unique token.
# Redis's own clock, so hosts with skewed clocks still share one window.
# Returns '0' when granted, else the seconds to wait.
_ACQUIRE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring((tonumber(oldest[2]) + window - now) / 1000000)
"""


class _Unavailable:
    """Redis could not answer: use the local state."""


_UNAVAILABLE = _Unavailable()


class RedisState(StateBackend):
    """State shared through Redis by every process and host using one routing key.

    :param url: ``redis://[:password@]host:port/db``, ``rediss://...`` (TLS) or
        ``unix:///path.sock``; redis-py's query options (``socket_timeout=``, ...) apply,
        plus ``prefix=`` for the key prefix.
    :param routing_key: only its hash is used, to name the keys.
    :param prefix: key prefix (default ``pd_integrations``, or the URL's ``prefix=``).
    :param socket_timeout: seconds for connecting and for each answer, unless the URL
        sets ``socket_timeout``/``socket_connect_timeout``.
    :param retry_after: seconds before Redis is tried again after a failure; doubles on
        each failed retry up to ``max_retry_after``.
    :param local_window: seconds (default 2; also the URL's ``local_window=``) for
        which a repeat of an alert this process saw open in Redis is counted here
        (:meth:`raise_alert_locally` decides it, no Redis command). A background thread
        sends the counts to Redis every window (and learns there whether the alert is
        still open, which renews the window), as do reading, acknowledging or
        auto-resolving the alert and :meth:`close`. The price: an alert another worker
        resolved is still suppressed here for up to the window. At most 10,000 alerts are
        remembered; more are decided by Redis (in the background) on every occurrence.
        ``0``: every occurrence is decided by Redis.
    :param lease: seconds (default 30; also the URL's ``lease=``) for which the process
        that opened an alert owns the delivery of its trigger. The alert stays *pending*
        until :meth:`confirm_trigger`; the owner renews the lease while it is still
        sending (:meth:`renew_leases`), and once it expired (the owner died) the next
        occurrence anywhere, or :meth:`take_expired`, hands the trigger to another
        process.
    :param clock: monotonic clock the window is measured with (tests move it).
    """

    def __init__(
        self,
        url: str,
        routing_key: str,
        *,
        prefix: str | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
        max_retry_after: float = MAX_RETRY_AFTER,
        local_window: float | None = None,
        lease: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not socket_timeout > 0 or not retry_after > 0 or max_retry_after < retry_after:
            raise ConfigurationError(
                "socket_timeout and retry_after must be positive, max_retry_after at least "
                "retry_after"
            )
        url, options = _split_options(url)
        prefix = prefix or options.get(PREFIX_PARAM) or DEFAULT_PREFIX
        if local_window is None:
            local_window = _seconds(
                options.get(LOCAL_WINDOW_PARAM, str(DEFAULT_LOCAL_WINDOW)), LOCAL_WINDOW_PARAM
            )
        if not 0 <= local_window < float("inf"):
            raise ConfigurationError(
                f"local_window must be 0 or more seconds, got {local_window!r}"
            )
        if lease is None:
            lease = _seconds(options.get(LEASE_PARAM, str(DEFAULT_LEASE)), LEASE_PARAM)
        if not 0 < lease < float("inf"):
            raise ConfigurationError(f"lease must be a positive number of seconds, got {lease!r}")
        self.local_window = local_window
        self.lease = lease
        self._clock = clock
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"the state key prefix {prefix!r} must not contain braces")
        self.description = safe_url(url)
        self.namespace = f"{prefix}:{{{routing_key_hash(routing_key)}}}"
        try:
            # One attempt per call: a retry would double the time a request waits, and
            # the fallback to local state is the retry.
            pool = redis.ConnectionPool.from_url(
                url,
                decode_responses=True,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as error:
            raise ConfigurationError(f"invalid Redis URL {self.description!r}: {error}") from None
        self.redis = redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self.local = MemoryState(routing_key)
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        self._index = f"{self.namespace}:alerts"
        self._rate_key = f"{self.namespace}:rate"
        self._pending = f"{self.namespace}:pending"
        self._owed = f"{self.namespace}:owed"
        self._owners = f"{self.namespace}:owed_by"
        self._raise = self.redis.register_script(_RAISE)
        self._confirm = self.redis.register_script(_CONFIRM)
        self._renew = self.redis.register_script(_RENEW)
        self._claim = self.redis.register_script(_CLAIM)
        self._acknowledge = self.redis.register_script(_ACKNOWLEDGE)
        self._resolve = self.redis.register_script(_RESOLVE)
        self._confirm_owed = self.redis.register_script(_CONFIRM_OWED)
        self._renew_owed = self.redis.register_script(_RENEW_OWED)
        self._claim_owed = self.redis.register_script(_CLAIM_OWED)
        self._push_script = self.redis.register_script(_PUSH)
        self._resolve_if_quiet = self.redis.register_script(_RESOLVE_IF_QUIET)
        self._observe_health = self.redis.register_script(_OBSERVE_HEALTH)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._init_guard()
        lifecycle.replace_locks_after_fork(self)

    def _init_guard(self) -> None:
        # Names this process as the owner of the triggers it must send; new in a child.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._recent: dict[str, _Recent] = {}
        self._recent_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._stop_flusher = threading.Event()
        self._lock = threading.Lock()
        self._available = True
        self._probing = False
        self._retry_at = 0.0
        self._backoff = self.retry_after

    @property
    def available(self) -> bool:
        """``False`` while Redis is failing and the local fallback is in use."""
        return self._available

    # -- alerts --------------------------------------------------------------------------

    decides_locally = False

    def raise_alert_locally(
        self, alert: Alert, ttl: float, refresh_after: float = 0.0
    ) -> Raised | None:
        """A repeat inside the local window is counted here; anything else is ``None``."""
        if not self.local_window:
            return None
        now = self._clock()
        with self._recent_lock:
            recent = self._recent.get(alert.dedup_key)
            if (
                recent is None
                or now >= recent.until
                or alert.severity.rank > recent.rank
                or alert.last_seen_timestamp >= recent.refresh_at
            ):
                return None  # raise_alert (in the background) decides it in Redis
            # The storm's hot path: counted here, no round trip.
            recent.pending += alert.occurrences
            recent.last_seen = alert.last_seen_timestamp
            return Raised(False, recent.occurrences + recent.pending)

    def raise_alert(self, alert: Alert, ttl: float, refresh_after: float = 0.0) -> Raised:
        key = alert.dedup_key
        pending = 0
        if self.local_window:
            now = self._clock()
            with self._recent_lock:
                recent = self._recent.get(key)
                if recent is not None:
                    if (
                        now < recent.until
                        and alert.severity.rank <= recent.rank
                        and alert.last_seen_timestamp < recent.refresh_at
                    ):
                        # The storm's hot path: counted here, no round trip.
                        recent.pending += alert.occurrences
                        recent.last_seen = alert.last_seen_timestamp
                        return Raised(False, recent.occurrences + recent.pending)
                    # The window is over (or this one is worse, or a refresh may be due):
                    # Redis decides again, and the repeats counted here go with this call.
                    del self._recent[key]
                    pending = recent.pending
        ttl_ms = _ms(ttl)
        result = self._call(
            lambda: self._raise(
                keys=[self._alert_key(key), self._index, self._pending, *self._owed_keys],
                args=[
                    key,
                    repr(alert.last_seen_timestamp),
                    ttl_ms,
                    alert.severity.rank,
                    alert.severity.value,
                    alert.summary,
                    alert.alert_type,
                    alert.component or "",
                    alert.identifier or "",
                    int(alert.auto_resolve),
                    alert.occurrences + pending,
                    repr(float(refresh_after)),
                    self.owner,
                    repr(float(self.lease)),
                ],
            )
        )
        if isinstance(result, _Unavailable):
            return self.local.raise_alert(alert, ttl, refresh_after)
        send, occurrences, refresh_at, severity = result
        raised = Raised(bool(int(send)), int(occurrences), _severity(severity))
        if self.local_window:
            with self._recent_lock:
                # Past the bound, new alerts are simply decided by Redis each time: safe,
                # and dropping remembered ones would lose their counts.
                earlier = self._recent.get(key)
                if earlier is not None or len(self._recent) < _RECENT_LIMIT:
                    recent = self._recent[key] = _Recent(
                        now + self.local_window,
                        alert.severity.rank,
                        raised.occurrences,
                        ttl_ms,
                        float(refresh_at) if refresh_at else math.inf,
                    )
                    if earlier is not None:
                        # Another thread's verdict came first and counted repeats since:
                        # they are not in this answer, and must not be lost.
                        recent.pending = earlier.pending
                        recent.last_seen = earlier.last_seen
            self._start_flusher()
        return raised

    def flush(self) -> None:
        """Send the repeats counted in the local window to Redis now.

        The background thread does this every ``local_window`` seconds; each alert still
        open in Redis gets a new window from now, the others are forgotten here so that
        their next occurrence is decided by Redis.
        """
        if not self._recent:
            return
        started = self._clock()
        with self._recent_lock:
            for key in [k for k, r in self._recent.items() if not r.pending and r.until <= started]:
                del self._recent[key]
            batch = [(k, r, r.pending, r.last_seen) for k, r in self._recent.items() if r.pending]
            for _, recent, pending, _ in batch:
                # Moved to occurrences so a repeat meanwhile still reports the right count.
                recent.pending = 0
                recent.occurrences += pending
        if not batch:
            return

        result = self._send_counts(
            [(key, pending, last_seen, recent.ttl_ms) for key, recent, pending, last_seen in batch]
        )
        with self._recent_lock:
            for i, (key, recent, pending, _) in enumerate(batch):
                if self._recent.get(key) is not recent:
                    continue  # resolved or decided by Redis meanwhile
                if isinstance(result, _Unavailable):
                    # Kept for the next try; the window is not renewed, so once it ends
                    # the callers go to Redis and, while it is down, the local state.
                    recent.pending += pending
                    recent.occurrences -= pending
                elif result[i]:
                    recent.occurrences = result[i]
                    recent.until = started + self.local_window
                else:
                    del self._recent[key]  # resolved elsewhere: the next one pages

    def _start_flusher(self) -> None:
        if self._flusher is not None:
            return
        with self._recent_lock:
            if self._flusher is not None or self._stop_flusher.is_set():
                return
            # Started under the lock, so close() never joins a thread that has not started.
            self._flusher = threading.Thread(
                target=self._flush_every_window, name="pd-integrations-state-flush", daemon=True
            )
            self._flusher.start()

    def _flush_every_window(self) -> None:
        stop = self._stop_flusher
        while not stop.wait(self.local_window):
            try:
                self.flush()
            except Exception:  # a bug here must not end the counting for good
                _log.exception("sending the locally counted alert repeats to Redis failed")

    def _push(self, dedup_keys: list[str] | None = None) -> None:
        """Send the repeats counted locally (for ``dedup_keys``, or all) to Redis."""
        if not self._recent:
            return
        with self._recent_lock:
            names = list(self._recent) if dedup_keys is None else dedup_keys
            counted = [(k, self._recent.pop(k)) for k in names if k in self._recent]
        counted = [(k, recent) for k, recent in counted if recent.pending]
        if not counted:
            return

        self._send_counts([(k, r.pending, r.last_seen, r.ttl_ms) for k, r in counted])

    def _send_counts(self, counts: list[tuple[str, int, float, int]]) -> list[int] | _Unavailable:
        """Add ``(dedup key, repeats, last seen, ttl ms)`` to the open alerts, in one
        pipeline; per alert, its count now, or 0 when it is no longer open."""

        def push() -> list[int]:
            pipe = self.redis.pipeline(transaction=False)
            for key, repeats, last_seen, ttl_ms in counts:
                self._push_script(
                    keys=[self._alert_key(key), self._index],
                    args=[key, repeats, repr(last_seen), ttl_ms],
                    client=pipe,
                )
            return [int(n) for n in pipe.execute()]

        return self._call(push)

    def confirm_trigger(self, dedup_key: str) -> None:
        self._call(
            lambda: self._confirm(
                keys=[self._alert_key(dedup_key), self._pending], args=[dedup_key]
            )
        )

    def renew_leases(self, dedup_keys: list[str]) -> None:
        if not dedup_keys:
            return
        self._call(
            lambda: self._renew(
                keys=[self._pending, *(self._alert_key(k) for k in dedup_keys)],
                args=[self.owner, repr(float(self.lease)), *dedup_keys],
            )
        )

    def take_expired(self, limit: int = 100) -> list[Alert]:
        def claim() -> list[Alert]:
            seconds, micros = self.redis.time()  # the clock the leases are kept in
            due: list[str] = self.redis.zrangebyscore(  # type: ignore[assignment]
                self._pending, "-inf", seconds + micros / 1e6, start=0, num=limit
            )
            taken: list[Alert] = []
            for key in due:
                flat = self._claim(
                    keys=[self._alert_key(key), self._pending],
                    args=[key, self.owner, repr(float(self.lease))],
                )
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                record = _alert_from_hash(key, fields) if fields else None
                if record is not None:
                    taken.append(record)
            return taken

        result = self._call(claim)
        return [] if isinstance(result, _Unavailable) else result

    def get_alert(self, dedup_key: str) -> Alert | None:
        self._push([dedup_key])
        result = self._call(lambda: self._hgetall(self._alert_key(dedup_key)))
        if isinstance(result, _Unavailable):
            return self.local.get_alert(dedup_key)
        return _alert_from_hash(dedup_key, result)

    def _hgetall(self, key: str) -> dict[str, str]:
        fields: dict[str, str] = self.redis.hgetall(key)  # type: ignore[assignment]
        return fields

    def active_alerts(self) -> list[Alert]:
        self._push()

        def fetch() -> list[Alert]:
            self.redis.zremrangebyscore(self._index, "-inf", time.time())
            keys: list[str] = self.redis.zrange(self._index, 0, -1)  # type: ignore[assignment]
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(self._alert_key(key))
            found = (_alert_from_hash(k, h) for k, h in zip(keys, pipe.execute(), strict=True))
            return [alert for alert in found if alert is not None]

        result = self._call(fetch)
        return self.local.active_alerts() if isinstance(result, _Unavailable) else result

    def acknowledge(self, dedup_key: str) -> bool:
        return self._acknowledge_alert(dedup_key, owe=False)

    def acknowledge_owed(self, dedup_key: str) -> bool:
        return self._acknowledge_alert(dedup_key, owe=True)

    def _acknowledge_alert(self, dedup_key: str, *, owe: bool) -> bool:
        self._push([dedup_key])
        result = self._call(
            lambda: self._acknowledge(
                keys=[self._alert_key(dedup_key), *self._owed_keys],
                args=[dedup_key, int(owe), *self._owner_args()],
            )
        )
        if isinstance(result, _Unavailable):
            return self.local.acknowledge(dedup_key)
        return bool(int(result))

    def resolve(self, dedup_key: str) -> bool:
        return self._resolve_alert(dedup_key, owe=False)

    def resolve_owed(self, dedup_key: str) -> bool:
        return self._resolve_alert(dedup_key, owe=True)

    def _resolve_alert(self, dedup_key: str, *, owe: bool) -> bool:
        local = self.forget_locally(dedup_key)
        result = self._call(
            lambda: self._resolve(
                keys=[self._alert_key(dedup_key), self._index, self._pending, *self._owed_keys],
                args=[dedup_key, int(owe), *self._owner_args()],
            )
        )
        return local if isinstance(result, _Unavailable) else bool(int(result))

    def forget_locally(self, dedup_key: str) -> bool:
        """Drop the local window's count and the fallback's record; ``True`` if this
        process knew the alert open (the repeats counted here are dropped with it)."""
        with self._recent_lock:
            recent = self._recent.pop(dedup_key, None)
        local = self.local.resolve(dedup_key)
        return local or (recent is not None and self._clock() < recent.until)

    def knows_open(self, dedup_key: str) -> bool:
        with self._recent_lock:
            recent = self._recent.get(dedup_key)
            if recent is not None and self._clock() < recent.until:
                return True
        return self.local.get_alert(dedup_key) is not None

    def confirm_owed(self, owed: Owed, dedup_key: str) -> None:
        self._call(lambda: self._confirm_owed(keys=self._owed_keys, args=[f"{owed}:{dedup_key}"]))

    def renew_owed(self, owed: list[tuple[Owed, str]]) -> None:
        if not owed:
            return
        members = [f"{action}:{key}" for action, key in owed]
        self._call(
            lambda: self._renew_owed(
                keys=self._owed_keys, args=[self.owner, repr(float(self.lease)), *members]
            )
        )

    def take_owed(self, limit: int = 100) -> list[tuple[Owed, str]]:
        result = self._call(
            lambda: self._claim_owed(
                keys=self._owed_keys, args=[self.owner, repr(float(self.lease)), limit]
            )
        )
        if isinstance(result, _Unavailable):
            return []
        taken: list[tuple[Owed, str]] = []
        for member in result:
            action, _, key = str(member).partition(":")
            try:
                taken.append((Owed(action), key))
            except ValueError:  # written by something else: not ours to send
                _log.warning("ignoring malformed owed event %r", member)
        return taken

    @property
    def _owed_keys(self) -> list[str]:
        return [self._owed, self._owners]

    def _owner_args(self) -> list[str | int]:
        return [self.owner, repr(float(self.lease)), _ms(DEFAULT_ALERT_TTL)]

    def resolve_if_quiet(self, dedup_key: str, quiet_for: float, now: float) -> float | None:
        self._push([dedup_key])
        result = self._call(
            lambda: self._resolve_if_quiet(
                keys=[self._alert_key(dedup_key), self._index, self._pending, *self._owed_keys],
                args=[dedup_key, repr(now), repr(quiet_for), *self._owner_args()],
            )
        )
        if isinstance(result, _Unavailable):
            return self.local.resolve_if_quiet(dedup_key, quiet_for, now)
        remaining = float(result)
        if remaining <= 0:
            self.local.resolve(dedup_key)
        return None if remaining < 0 else remaining

    # -- health --------------------------------------------------------------------------

    def observe_health(
        self, key: str, healthy: bool, failure_threshold: int, recovery_threshold: int
    ) -> HealthState:
        result = self._call(
            lambda: self._observe_health(
                keys=[self._health_key(key)],
                args=[int(healthy), failure_threshold, recovery_threshold, _ms(HEALTH_TTL)],
            )
        )
        if isinstance(result, _Unavailable):
            return self.local.observe_health(key, healthy, failure_threshold, recovery_threshold)
        failures, successes, down, edge = result
        shared = HealthState(
            int(failures), int(successes), bool(int(down)), Edge(edge) if edge else None
        )
        if self.local.health(key).down:
            # This process paged alone while Redis was out, and Redis never heard of it:
            # the local state still owes that alert its resolve, which Redis would not
            # decide. Both a shared and a local resolve may go out: PagerDuty ignores one.
            mine = self.local.observe_health(key, healthy, failure_threshold, recovery_threshold)
            if mine.edge is Edge.RESOLVE and not shared.down and shared.edge is None:
                return HealthState(shared.failures, shared.successes, False, Edge.RESOLVE)
        return shared

    def health(self, key: str) -> HealthState:
        result = self._call(
            lambda: self.redis.hmget(self._health_key(key), ["failures", "successes", "down"])
        )
        if isinstance(result, _Unavailable):
            return self.local.health(key)
        failures, successes, down = result
        return HealthState(int(failures or 0), int(successes or 0), down == "1")

    # -- rate budget ---------------------------------------------------------------------

    def rate_budget(self, per_minute: int) -> RateBudget:
        return ratelimit.shared_budget(self.local.routing_key, per_minute, window=self)

    def acquire(self, per_minute: int) -> float | None:
        """Spend one send in the shared window (:class:`~.ratelimit.SharedWindow`)."""
        result = self._call(
            lambda: self._acquire(
                keys=[self._rate_key],
                args=[per_minute, int(WINDOW_SECONDS * 1_000_000), os.urandom(8).hex()],
            )
        )
        return None if isinstance(result, _Unavailable) else max(0.0, float(result))

    def reset_window(self) -> None:
        self._call(lambda: self.redis.delete(self._rate_key))

    # -- the rest ------------------------------------------------------------------------

    def clear(self) -> None:
        """Delete every key of this namespace (this routing key and prefix) and local state."""

        def delete_all() -> None:
            pattern = _glob_escape(self.namespace) + ":*"
            batch: list[str] = []
            for key in self.redis.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    self.redis.delete(*batch)
                    batch.clear()
            if batch:
                self.redis.delete(*batch)

        with self._recent_lock:
            self._recent.clear()
        self.local.clear()
        self._call(delete_all)

    def close(self) -> None:
        """Stop the background flush, send what the local window counted, disconnect."""
        with self._recent_lock:
            self._stop_flusher.set()
            flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            # A flush under way waits for one answer at most; then the rest is sent here.
            timeout = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
            flusher.join(2 * float(timeout or DEFAULT_SOCKET_TIMEOUT) + 1.0)
        self._push()
        self.redis.connection_pool.disconnect()

    def _alert_key(self, dedup_key: str) -> str:
        return f"{self.namespace}:alert:{dedup_key}"

    def _health_key(self, key: str) -> str:
        return f"{self.namespace}:health:{key}"

    # -- falling back --------------------------------------------------------------------

    def _call(self, operation: Callable[[], T]) -> T | _Unavailable:
        if not self._should_try():
            return _UNAVAILABLE
        try:
            result = operation()
        except (RedisError, OSError) as error:
            self._failed(error)
            return _UNAVAILABLE
        if not self._available:
            self._recovered()
        return result

    def _should_try(self) -> bool:
        if self._available:  # the common case: no lock
            return True
        with self._lock:
            if self._available:
                return True
            if self._probing or time.monotonic() < self._retry_at:
                return False
            self._probing = True  # this caller probes; the others stay local meanwhile
            return True

    def _failed(self, error: Exception) -> None:
        with self._lock:
            was_available, probe = self._available, self._probing
            self._available = self._probing = False
            if was_available:
                self._backoff = self.retry_after
            elif probe:
                self._backoff = min(self._backoff * 2, self.max_retry_after)
            else:
                return  # a call that was already under way when Redis failed
            self._retry_at = time.monotonic() + self._backoff
        if was_available:
            # One warning per outage, however many calls fall back during it.
            _log.warning(
                "shared alert state at %s is unavailable (%s: %s); alerting continues with "
                "this process's own state, retrying Redis in the background of later calls",
                self.description,
                type(error).__name__,
                error,
            )

    def _recovered(self) -> None:
        with self._lock:
            if self._available:
                return
            self._available, self._probing = True, False
            self._backoff = self.retry_after
        _log.info("shared alert state at %s is reachable again", self.description)

    def _after_fork(self) -> None:
        # redis-py's pool notices the new pid itself; only our locks need replacing, and
        # the parent's local counts are the parent's to send.
        self._lock = threading.Lock()
        self._probing = False
        self._recent = {}
        self._recent_lock = threading.Lock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        # The parent's flusher thread does not exist here; the child starts its own.
        self._flusher = None
        self._stop_flusher = threading.Event()


def _alert_from_hash(dedup_key: str, fields: Mapping[str, str]) -> Alert | None:
    if not fields:
        return None
    try:
        return Alert(
            dedup_key=dedup_key,
            summary=fields["summary"],
            severity=Severity.parse(fields["severity"]),
            alert_type=fields["alert_type"],
            component=fields.get("component") or None,
            identifier=fields.get("identifier") or None,
            first_seen_timestamp=float(fields["first_seen"]),
            last_seen_timestamp=float(fields["last_seen"]),
            occurrences=int(fields["occurrences"]),
            acknowledged=fields.get("acknowledged") == "1",
            auto_resolve=fields.get("auto_resolve") == "1",
        )
    except (KeyError, ValueError):
        # Written by something else, or half-expired: treat as not open.
        _log.warning("ignoring malformed alert state for %r", dedup_key)
        return None


def _severity(text: str | None) -> Severity | None:
    """The stored severity a refresh must keep; ``None`` (the caller's) if unreadable."""
    try:
        return Severity.parse(text) if text else None
    except ValueError:
        return None


def _split_options(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without our own query options (redis-py would reject them), and their values."""
    ours = (PREFIX_PARAM, LOCAL_WINDOW_PARAM, LEASE_PARAM)
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    options = {k: v for k, v in pairs if k in ours and v}
    if not any(k in ours for k, _ in pairs):
        return url, options
    # Rebuilt by hand: urlunsplit would turn unix:///path into unix:/path.
    rest = urlencode([(k, v) for k, v in pairs if k not in ours])
    return (f"{base}?{rest}" if rest else base), options


def _seconds(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"the state URL's {name}= must be seconds, got {text!r}") from None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
