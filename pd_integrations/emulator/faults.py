"""Injected failures for the Events API endpoints, decided by a seeded random generator.

Every ``/v2`` request draws the same number of random values whatever the settings, so
with a fixed seed the sequence of decisions depends only on the order of requests. The
draw for slow requests comes from a second generator derived from the same seed, so
adding it left the decisions of the older settings unchanged for any given seed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

OutageMode = Literal["error", "drop"]
DecisionKind = Literal["pass", "drop", "error", "throttle"]

ERROR_STATUSES = (500, 502, 503)
OUTAGE_STATUS = 503
# A delay beyond this is a misconfiguration rather than a slow server.
MAX_LATENCY = 300.0
_RATES = ("error_rate", "rate_limit_429_rate", "drop_rate", "slow_rate")


@dataclass(frozen=True)
class FaultConfig:
    """What to break. Rates are shares of ``/v2`` requests between 0 and 1.

    ``outage`` answers every ``/v2`` request with a 503 (``outage_mode="error"``) or
    closes the connection without an answer (``"drop"``); with ``outage_seconds`` it
    ends by itself that many seconds after it was set.

    ``latency`` delays every answer; ``slow_rate`` picks a share of requests that wait
    ``slow_latency`` seconds more. A slow request is otherwise handled as usual: set
    ``slow_latency`` beyond the client's timeout and an accepted event's 202 is lost on
    the way back, which is how a client's retry of an event PagerDuty already has is
    provoked.
    """

    error_rate: float = 0.0
    rate_limit_429_rate: float = 0.0
    latency: float = 0.0
    drop_rate: float = 0.0
    outage: bool = False
    outage_seconds: float | None = None
    outage_mode: OutageMode = "error"
    slow_rate: float = 0.0
    slow_latency: float = 0.0

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        found = [
            f"{name} must be a number between 0 and 1"
            for name in _RATES
            if not _is_number(getattr(self, name)) or not 0.0 <= getattr(self, name) <= 1.0
        ]
        for name in ("latency", "slow_latency"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= MAX_LATENCY:
                found.append(f"{name} must be a number of seconds between 0 and {MAX_LATENCY:g}")
        if not isinstance(self.outage, bool):
            found.append("outage must be true or false")
        if self.outage_seconds is not None and (
            not _is_number(self.outage_seconds) or self.outage_seconds <= 0
        ):
            found.append("outage_seconds must be a positive number of seconds, or null")
        if self.outage_mode not in ("error", "drop"):
            found.append("outage_mode must be 'error' or 'drop'")
        return found

    @property
    def active(self) -> bool:
        """True when any fault can happen."""
        return self != FaultConfig()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base: FaultConfig | None = None
    ) -> FaultConfig:
        """Build from JSON-like data; fields not given come from ``base`` (or defaults).

        Raises ValueError naming every unknown field and invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(name) for name in data if name not in known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        return replace(base or cls(), **dict(data))


def _slow_rng(seed: int | None) -> random.Random:
    # A string seed is hashed with SHA-512, so the stream is the same in every process.
    return random.Random(None if seed is None else f"slow-requests:{seed}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


@dataclass(frozen=True)
class Decision:
    """What to do with one ``/v2`` request: wait ``delay`` seconds, then act."""

    kind: DecisionKind
    delay: float = 0.0
    status: int | None = None
    reason: str | None = None


class FaultInjector:
    """The current fault settings and the decisions they lead to; thread-safe."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._slow_rng = _slow_rng(seed)
        self._clock = clock
        self._config = FaultConfig()
        self._outage_ends: float | None = None
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Replace the settings; an outage window starts counting now."""
        with self._lock:
            self._set(config)

    def update(self, **changes: Any) -> FaultConfig:
        """Change only the given settings; returns the new settings."""
        with self._lock:
            config = FaultConfig.from_mapping(changes, base=self._current())
            deadline = self._outage_ends
            self._set(config)
            # Changing another setting must not restart a running timed outage.
            if "outage" not in changes and "outage_seconds" not in changes:
                self._outage_ends = deadline
            return config

    def clear(self) -> None:
        """No faults, and the random sequence starts again from the seed."""
        with self._lock:
            self._set(FaultConfig())
            self._rng = random.Random(self._seed)
            self._slow_rng = _slow_rng(self._seed)

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._current()

    def snapshot(self) -> dict[str, Any]:
        """The settings as JSON, plus the seconds left in a timed outage."""
        with self._lock:
            config = self._current()
            remaining = None
            if self._outage_ends is not None:
                remaining = round(max(0.0, self._outage_ends - self._clock()), 3)
            return {**config.to_dict(), "outage_remaining": remaining, "seed": self._seed}

    def decide(self) -> Decision:
        with self._lock:
            config = self._current()
            drop_draw, error_draw, throttle_draw = (self._rng.random() for _ in range(3))
            status = self._rng.choice(ERROR_STATUSES)
            slow_draw = self._slow_rng.random()
        delay = config.latency
        if slow_draw < config.slow_rate:
            delay += config.slow_latency
        if config.outage:
            if config.outage_mode == "drop":
                return Decision("drop", delay, None, "outage")
            return Decision("error", delay, OUTAGE_STATUS, "outage")
        if drop_draw < config.drop_rate:
            return Decision("drop", delay, None, "drop_rate")
        if error_draw < config.error_rate:
            return Decision("error", delay, status, "error_rate")
        if throttle_draw < config.rate_limit_429_rate:
            return Decision("throttle", delay, 429, "rate_limit_429_rate")
        return Decision("pass", delay)

    def _set(self, config: FaultConfig) -> None:
        self._config = config
        self._outage_ends = None
        if config.outage and config.outage_seconds is not None:
            self._outage_ends = self._clock() + config.outage_seconds

    def _current(self) -> FaultConfig:
        # A timed outage ends by itself; afterwards the settings read as "no outage".
        if self._outage_ends is not None and self._clock() >= self._outage_ends:
            self._config = replace(self._config, outage=False, outage_seconds=None)
            self._outage_ends = None
        return self._config
