"""A scripted httpx transport: answers from a script, records every request, can hang."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from pd_integrations.client import RetryPolicy
from pd_integrations.events import TriggerEvent

Answer = int | httpx.Response | Exception

# Retries that wait milliseconds: a scripted answer needs no real back-off.
FAST = RetryPolicy(base_delay=0.001, max_delay=0.01, rate_limited_base_delay=0.001)


def trigger(key: str, severity: str = "error", summary: str = "boom") -> TriggerEvent:
    """A trigger with a fixed dedup key, for tests of what the sender does with it."""
    return TriggerEvent(summary, severity, "tests", dedup_key=key)


class ScriptedTransport(httpx.BaseTransport):
    """Answers each request with the next scripted status/response/exception, then 202s.

    With ``gate`` set, every request first waits for it, like a hanging endpoint.
    ``by_key`` scripts answers per dedup key instead (a key left out, or whose list is
    used up, is answered from ``script``, then with 202s).
    """

    def __init__(
        self,
        script: Iterable[Answer] = (),
        *,
        gate: threading.Event | None = None,
        by_key: dict[str, list[Answer]] | None = None,
    ):
        self.script = list(script)
        self.by_key = by_key or {}
        self.gate = gate
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()
        self.arrived = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        keyed = self.by_key.get(json.loads(request.content).get("dedup_key", ""))
        with self._lock:
            self.requests.append(request)
            if keyed:
                answer: Answer = keyed.pop(0)
            else:
                answer = self.script.pop(0) if self.script else 202
        self.arrived.set()
        if self.gate is not None:
            self.gate.wait(30)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        body = json.loads(request.content)
        if answer == 202:
            return httpx.Response(
                202,
                json={
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": body.get("dedup_key", "generated"),
                },
            )
        if answer == 400:
            return httpx.Response(
                400,
                json={
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["'payload.summary' is missing"],
                },
            )
        return httpx.Response(answer, json={"status": "error", "message": "scripted"})

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r.content) for r in self.requests]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until true or ``timeout``; for background work, never for timing."""
    done = threading.Event()
    deadline = timeout
    step = 0.01
    while deadline > 0:
        if condition():
            return True
        done.wait(step)
        deadline -= step
    return condition()
