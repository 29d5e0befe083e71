"""A scripted PagerDuty REST API and a harness driving the sync or async client through it."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from pd_integrations.rest import AsyncRestClient, RestClient

API_KEY = "u+TestRestKey-0123456789"
FROM = "responder@example.com"
BASE = "http://pagerduty.test/rest"

Answer = httpx.Response | Exception
Responder = Callable[[httpx.Request], httpx.Response]


def ok(**body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


def fail(status: int, message: str = "Failed", code: int = 2001, *errors: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "code": code, "errors": list(errors)}}
    )


class FakePagerDuty:
    """Answers with the scripted answers first, then with ``respond`` (an empty 200 by default)."""

    def __init__(self, *script: Answer, respond: Responder | None = None) -> None:
        self.script = list(script)
        self.respond: Responder = respond or (lambda request: ok())
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return self.respond(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        content = self.requests[index].content
        return json.loads(content) if content else None

    def params(self, index: int = -1) -> list[tuple[str, str]]:
        return list(self.requests[index].url.params.multi_items())


class FakeTime:
    """A clock that moves only when the client sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 500.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Harness:
    """One client, sync or async, in front of a :class:`FakePagerDuty`.

    :meth:`call` runs a client method the same way for both: coroutines are awaited and
    iterators (sync or async) are read to the end, so one test covers both clients.
    """

    def __init__(self, mode: str, fake: FakePagerDuty, **kwargs: Any) -> None:
        self.mode = mode
        self.fake = fake
        self.time = FakeTime()
        kwargs.setdefault("from_email", FROM)
        kwargs.setdefault("base_url", BASE)
        kwargs.setdefault("rng", random.Random(7))
        kwargs.setdefault("clock", self.time.clock)
        api_key = kwargs.pop("api_key", API_KEY)
        self._runner = asyncio.Runner()
        self.client: RestClient | AsyncRestClient
        if mode == "sync":
            self.client = RestClient(
                api_key, transport=httpx.MockTransport(fake), sleep=self.time.sleep, **kwargs
            )
        else:
            self.client = AsyncRestClient(
                api_key,
                transport=httpx.MockTransport(fake),
                sleep=self.time.async_sleep,
                **kwargs,
            )

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        if isinstance(result, Iterator):
            return list(result)
        if isinstance(result, AsyncIterator):
            return self._runner.run(_collect(result))
        if asyncio.iscoroutine(result):
            return self._runner.run(result)
        return result

    def close(self) -> None:
        if isinstance(self.client, AsyncRestClient):
            self._runner.run(self.client.close())
        else:
            self.client.close()
        self._runner.close()


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]
