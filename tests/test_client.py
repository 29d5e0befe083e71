from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from pd_integrations import client as client_module
from pd_integrations.client import (
    DEFAULT_BASE_URL,
    EU_BASE_URL,
    AsyncEventsClient,
    EventResponse,
    EventsClient,
    RetryPolicy,
)
from pd_integrations.errors import (
    ConfigurationError,
    DeliveryError,
    InvalidEventError,
    PagerDutyError,
    RateLimitedError,
)
from pd_integrations.events import ChangeEvent, Severity, TriggerEvent, mask_key

from .spec import assert_valid_event

KEY = "c1ienttestroutingkey000000000001"
OTHER_KEY = "0therclientroutingkey00000000002"
POLICY = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=8.0, rate_limited_base_delay=4.0)
MODES = ["sync", "async"]
ENV_VARS = (
    "PAGERDUTY_ROUTING_KEY",
    "PAGERDUTY_INTEGRATION_KEY",
    "PAGERDUTY_EVENTS_BASE_URL",
    "APP_NAME",
)

Answer = int | httpx.Response | Exception


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


class Server:
    """A scripted PagerDuty: answers with the next scripted item, then 202s.

    Every body it receives must validate against the Events v2 schema.
    """

    def __init__(self, script: Sequence[Answer] = ()) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.closed = False
        self.on_request: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        kind = (
            "/v2/change/enqueue" if request.url.path.endswith("/change/enqueue") else "/v2/enqueue"
        )
        assert_valid_event(kind, request.content)
        if self.on_request is not None:
            self.on_request()
        with self._lock:
            self.requests.append(request)
            answer = self.script.pop(0) if self.script else 202
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        if answer == 202:
            message = "Change event processed" if "change" in kind else "Event processed"
            reply = {"status": "success", "message": message}
            if "dedup_key" in body:
                reply["dedup_key"] = body["dedup_key"]
            return httpx.Response(202, json=reply)
        if answer == 400:
            return httpx.Response(
                400,
                json={
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["'payload.summary' is missing"],
                },
            )
        return httpx.Response(answer, json={"status": "error", "message": "scripted failure"})

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    def transport(self) -> httpx.MockTransport:
        server = self

        class Transport(httpx.MockTransport):
            def close(self) -> None:
                server.closed = True

            async def aclose(self) -> None:
                server.closed = True

        return Transport(self)


class FakeTime:
    """A clock that only moves when the client sleeps, recording every requested delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.during_sleep: Callable[[], None] | None = None
        self.during_async_sleep: Callable[[], Awaitable[None]] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self.during_sleep is not None:
            self.during_sleep()

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        if self.during_async_sleep is not None:
            await self.during_async_sleep()


class MaxRandom(random.Random):
    """Always draws the top of the range, so backoff equals its cap."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Harness:
    """Drives an EventsClient or an AsyncEventsClient through the same calls."""

    def __init__(self, mode: str, script: Sequence[Answer] = (), **kwargs: Any) -> None:
        self.mode = mode
        self.server = Server(script)
        self.time = FakeTime()
        kwargs.setdefault("source", "tests")
        kwargs.setdefault("retry", POLICY)
        kwargs.setdefault("rng", random.Random(1234))
        kwargs.setdefault("clock", self.time.clock)
        self.client: EventsClient | AsyncEventsClient
        if mode == "sync":
            self.client = EventsClient(
                KEY, transport=self.server.transport(), sleep=self.time.sleep, **kwargs
            )
        else:
            self.client = AsyncEventsClient(
                KEY,
                transport=self.server.transport(),
                sleep=self.time.async_sleep,
                **kwargs,
            )

    def call(self, method: str, *args: Any, **kwargs: Any) -> EventResponse:
        result = getattr(self.client, method)(*args, **kwargs)
        if self.mode == "async":
            result = run(result)
        assert isinstance(result, EventResponse)
        return result

    def close(self) -> None:
        if isinstance(self.client, AsyncEventsClient):
            run(self.client.close())
        else:
            self.client.close()


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- success -----------------------------------------------------------------------


def test_an_accepted_trigger_returns_pagerduty_answer(mode: str) -> None:
    answer = httpx.Response(
        202, json={"status": "success", "message": "Event processed", "dedup_key": "srv-1"}
    )
    h = Harness(mode, [answer])
    response = h.call("trigger", "Disk full", "critical", component="db")
    assert response == EventResponse("success", "Event processed", "srv-1")
    (request,) = h.server.requests
    assert request.method == "POST"
    assert str(request.url) == "https://events.pagerduty.com/v2/enqueue"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("pd-integrations/")
    body = h.server.bodies[0]
    assert body["routing_key"] == KEY
    assert body["event_action"] == "trigger"
    assert body["payload"]["severity"] == "critical"
    assert body["payload"]["component"] == "db"
    assert len(body["dedup_key"]) >= 16
    h.close()


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'{"status": 7, "message": null, "dedup_key": ["x"]}'],
)
def test_odd_success_bodies_fall_back_to_what_was_sent(mode: str, content: bytes) -> None:
    h = Harness(mode, [httpx.Response(202, content=content)])
    response = h.call("trigger", "boom", "error", dedup_key="mine")
    assert response == EventResponse("success", "Event processed", "mine")
    h.server.script.append(httpx.Response(202, content=content))
    response = h.call("change", "deployed")
    assert response == EventResponse("success", "Change event processed", None)


def test_acknowledge_and_resolve_carry_the_dedup_key(mode: str) -> None:
    h = Harness(mode)
    assert h.call("acknowledge", "k-1").dedup_key == "k-1"
    assert h.call("resolve", "k-1").dedup_key == "k-1"
    assert [(b["event_action"], b["dedup_key"]) for b in h.server.bodies] == [
        ("acknowledge", "k-1"),
        ("resolve", "k-1"),
    ]
    assert all("payload" not in body for body in h.server.bodies)


def test_change_events_go_to_the_change_endpoint_without_dedup_key(mode: str) -> None:
    h = Harness(mode)
    response = h.call(
        "change",
        "Deployed v2.4.0",
        custom_details={"sha": "9f1c2e"},
        links=[{"href": "https://ci.example.com/1", "text": "build"}],
    )
    assert response == EventResponse("success", "Change event processed", None)
    (request,) = h.server.requests
    assert request.url.path == "/v2/change/enqueue"
    body = h.server.bodies[0]
    assert "dedup_key" not in body
    assert "event_action" not in body
    assert body["payload"]["source"] == "tests"
    assert body["links"] == [{"href": "https://ci.example.com/1", "text": "build"}]


def test_send_accepts_event_models(mode: str) -> None:
    h = Harness(mode)
    response = h.call("send", TriggerEvent("boom", Severity.WARNING, "worker-3", dedup_key="abc"))
    assert response.dedup_key == "abc"
    assert h.call("send", ChangeEvent("migrated")).dedup_key is None
    assert h.server.bodies[0]["payload"]["source"] == "worker-3"
    # A change event without a source is sent as it is, not with the client's source.
    assert "source" not in h.server.bodies[1]["payload"]


def test_the_scrubber_is_applied_and_can_be_turned_off(mode: str) -> None:
    h = Harness(mode)
    h.call("trigger", "boom", "error", custom_details={"password": "hunter2"})
    assert "hunter2" not in h.server.requests[0].content.decode()
    raw = Harness(mode, scrubber=None)
    raw.call("trigger", "boom", "error", custom_details={"password": "hunter2"})
    assert "hunter2" in raw.server.requests[0].content.decode()


def test_invalid_events_fail_before_anything_is_sent(mode: str) -> None:
    h = Harness(mode)
    with pytest.raises(InvalidEventError):
        h.call("trigger", "boom", "catastrophic")
    with pytest.raises(InvalidEventError):
        h.call("resolve", "")
    assert h.server.requests == []


# -- retries -----------------------------------------------------------------------


def test_every_retry_sends_the_same_bytes_and_dedup_key(mode: str) -> None:
    h = Harness(mode, [500, 502, 503])
    response = h.call("trigger", "boom", "error")
    assert len(h.server.requests) == 4
    contents = {request.content for request in h.server.requests}
    assert len(contents) == 1
    key = h.server.bodies[0]["dedup_key"]
    assert response.dedup_key == key
    assert len(h.time.sleeps) == 3


def test_rate_limited_then_accepted(mode: str) -> None:
    h = Harness(mode, [429], rng=MaxRandom())
    assert h.call("trigger", "boom", "error").status == "success"
    assert len(h.server.requests) == 2
    # Backoff after a 429 starts at rate_limited_base_delay, not base_delay.
    assert h.time.sleeps == [POLICY.rate_limited_base_delay]


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=["connect", "read-timeout", "protocol"],
)
def test_network_errors_are_retried(mode: str, failure: Exception) -> None:
    h = Harness(mode, [failure, failure])
    assert h.call("trigger", "boom", "error").status == "success"
    assert len(h.server.requests) == 3
    assert len({request.content for request in h.server.requests}) == 1


def test_400_is_never_retried_and_carries_pagerduty_errors(mode: str) -> None:
    h = Harness(mode, [400])
    with pytest.raises(InvalidEventError) as caught:
        h.call("trigger", "boom", "error")
    assert caught.value.status_code == 400
    assert caught.value.errors == ["'payload.summary' is missing"]
    assert "Event object is invalid" in str(caught.value)
    assert len(h.server.requests) == 1
    assert h.time.sleeps == []


@pytest.mark.parametrize("status", [401, 403, 404, 413])
def test_other_4xx_are_not_retried(mode: str, status: int) -> None:
    h = Harness(mode, [status])
    with pytest.raises(InvalidEventError) as caught:
        h.call("trigger", "boom", "error")
    assert caught.value.status_code == status
    assert str(status) in str(caught.value)
    assert len(h.server.requests) == 1


def test_an_unexpected_redirect_is_not_retried(mode: str) -> None:
    h = Harness(mode, [httpx.Response(301, headers={"Location": "https://elsewhere.example"})])
    with pytest.raises(PagerDutyError) as caught:
        h.call("trigger", "boom", "error")
    assert not isinstance(caught.value, DeliveryError | InvalidEventError)
    assert len(h.server.requests) == 1


def test_gives_up_after_max_attempts_with_delivery_error(mode: str) -> None:
    h = Harness(mode, [503] * 10)
    with pytest.raises(DeliveryError) as caught:
        h.call("trigger", "boom", "error")
    assert type(caught.value) is DeliveryError
    assert caught.value.attempts == POLICY.max_attempts
    assert caught.value.status_code == 503
    assert len(h.server.requests) == POLICY.max_attempts
    assert len(h.time.sleeps) == POLICY.max_attempts - 1


def test_gives_up_on_persistent_429_with_rate_limited_error(mode: str) -> None:
    h = Harness(mode, [503] + [429] * 10)
    with pytest.raises(RateLimitedError) as caught:
        h.call("trigger", "boom", "error")
    assert caught.value.attempts == POLICY.max_attempts
    assert caught.value.status_code == 429


def test_the_last_failure_decides_the_give_up_error(mode: str) -> None:
    h = Harness(mode, [429, 429, 429, 429, httpx.ConnectError("refused")])
    with pytest.raises(DeliveryError) as caught:
        h.call("trigger", "boom", "error")
    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.status_code is None
    assert caught.value.attempts == 5


def test_the_deadline_bounds_total_sleeping(mode: str) -> None:
    policy = RetryPolicy(max_attempts=50, base_delay=4.0, max_delay=100.0, deadline=10.0)
    h = Harness(mode, [503] * 50, retry=policy, rng=MaxRandom())
    with pytest.raises(DeliveryError) as caught:
        h.call("trigger", "boom", "error")
    # 4 s, then 8 s cut to the 6 s left; one last attempt at the deadline, then stop.
    assert h.time.sleeps == [4.0, 6.0]
    assert caught.value.attempts == 3
    assert len(h.server.requests) == 3


def test_no_retry_once_the_deadline_has_passed(mode: str) -> None:
    h = Harness(mode, [503] * 5, retry=RetryPolicy(deadline=1.0))
    h.server.on_request = lambda: h.time.sleep(5.0)  # the attempt outlasts the deadline
    with pytest.raises(DeliveryError) as caught:
        h.call("trigger", "boom", "error")
    assert caught.value.attempts == 1
    assert h.time.sleeps == [5.0]  # only the attempt itself; no backoff sleep


def test_retry_delays_stay_within_the_growing_cap(mode: str) -> None:
    h = Harness(mode, [503] * 4, rng=random.Random(99))
    h.call("trigger", "boom", "error")
    caps = [POLICY.cap(n, rate_limited=False) for n in range(1, 5)]
    assert caps == [1.0, 2.0, 4.0, 8.0]
    assert all(0.0 <= delay <= cap for delay, cap in zip(h.time.sleeps, caps, strict=True))


def test_send_once_makes_exactly_one_attempt(mode: str) -> None:
    h = Harness(mode, [503, 429])
    with pytest.raises(DeliveryError) as first:
        h.call("send_once", TriggerEvent("boom", Severity.ERROR, "tests"))
    assert first.value.attempts == 1
    with pytest.raises(RateLimitedError):
        h.call("send_once", TriggerEvent("boom", Severity.ERROR, "tests"))
    response = h.call("send_once", TriggerEvent("boom", Severity.ERROR, "tests"))
    assert response.dedup_key == h.server.bodies[-1]["dedup_key"]
    assert len(h.server.requests) == 3
    assert h.time.sleeps == []


# -- RetryPolicy -------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_growing_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, rate_limited_base_delay=5.0)
    rng = random.Random(2024)
    caps = [policy.cap(n, rate_limited=False) for n in range(1, 10)]
    assert caps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert [policy.cap(n, rate_limited=True) for n in range(1, 5)] == [5.0, 10.0, 20.0, 30.0]
    for attempt, cap in enumerate(caps, start=1):
        draws = [policy.backoff(attempt, rate_limited=False, rng=rng) for _ in range(300)]
        assert all(0.0 <= d <= cap for d in draws)
        # Spread over the whole range, not clustered at the cap or at zero.
        assert min(draws) < cap * 0.1
        assert max(draws) > cap * 0.9
    assert policy.backoff(10_000, rate_limited=True, rng=rng) <= 30.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"deadline": 0.0}, {"max_delay": -0.1}],
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)


# -- configuration -----------------------------------------------------------------


def test_routing_key_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_INTEGRATION_KEY", OTHER_KEY)
    assert EventsClient().routing_key == OTHER_KEY
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", KEY)
    assert EventsClient().routing_key == KEY
    assert AsyncEventsClient().routing_key == KEY
    assert EventsClient(OTHER_KEY).routing_key == OTHER_KEY


def test_a_missing_routing_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="PAGERDUTY_ROUTING_KEY"):
        EventsClient()
    with pytest.raises(ConfigurationError):
        AsyncEventsClient()


@pytest.mark.parametrize("bad", [KEY + "x", KEY[:-1] + " ", KEY[:20]])
def test_a_malformed_key_is_rejected_without_echoing_it(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        EventsClient(bad)
    assert bad.strip() not in str(caught.value)
    assert bad.strip() not in repr(caught.value)


def test_repr_masks_the_key(mode: str) -> None:
    h = Harness(mode)
    text = repr(h.client)
    assert KEY not in text
    assert mask_key(KEY) in text
    assert DEFAULT_BASE_URL in text


def test_errors_and_logs_never_contain_the_full_key(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    echo = httpx.Response(
        400,
        json={"message": f"bad key {KEY}", "errors": [f"routing_key {KEY} is wrong"]},
    )
    script: list[Answer] = [503, httpx.ConnectError(f"refused for {KEY}"), echo]
    h = Harness(mode, [*script, *[503] * 5])
    caplog.set_level(logging.DEBUG, logger="pd_integrations.client")
    with pytest.raises(InvalidEventError) as invalid:
        h.call("trigger", "boom", "error")
    assert KEY not in str(invalid.value)
    assert all(KEY not in error for error in invalid.value.errors)
    with pytest.raises(DeliveryError) as gave_up:
        h.call("trigger", "boom", "error")
    assert KEY not in str(gave_up.value)
    assert caplog.records
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    assert any(mask_key(KEY) in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert record.exc_info is None or KEY not in str(record.exc_info[1])
    assert KEY not in caplog.text


def test_base_url_env_fallback_and_trailing_slash(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_EVENTS_BASE_URL", "http://127.0.0.1:8080/pd/")
    h = Harness(mode)
    assert h.client.base_url == "http://127.0.0.1:8080/pd"
    h.call("trigger", "boom", "error")
    h.call("change", "deployed")
    assert [str(r.url) for r in h.server.requests] == [
        "http://127.0.0.1:8080/pd/v2/enqueue",
        "http://127.0.0.1:8080/pd/v2/change/enqueue",
    ]
    explicit = Harness(mode, base_url=EU_BASE_URL)
    explicit.call("trigger", "boom", "error")
    assert str(explicit.server.requests[0].url) == "https://events.eu.pagerduty.com/v2/enqueue"


def test_default_base_url() -> None:
    assert EventsClient(KEY).base_url == DEFAULT_BASE_URL == "https://events.pagerduty.com"
    assert EU_BASE_URL == "https://events.eu.pagerduty.com"


@pytest.mark.parametrize(
    "url",
    [
        "events.pagerduty.com",
        "ftp://events.pagerduty.com",
        "https://",
        "https://h/?x=1",
        "http://[::",
    ],
)
def test_a_bad_base_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        EventsClient(KEY, base_url=url)


def test_bad_timeout_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        EventsClient(KEY, timeout=0)


def test_source_falls_back_to_app_name_then_hostname(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "host-7")
    assert Harness(mode, source=None).client.source == "host-7"
    monkeypatch.setenv("APP_NAME", "checkout")
    h = Harness(mode, source=None)
    assert h.client.source == "checkout"
    h.call("trigger", "boom", "error")
    h.call("trigger", "boom", "error", source="web-9")
    assert [b["payload"]["source"] for b in h.server.bodies] == ["checkout", "web-9"]
    assert Harness(mode, source="billing").client.source == "billing"


# -- lifecycle ---------------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_client_refuses_to_send() -> None:
    server = Server()
    with EventsClient(KEY, transport=server.transport()) as client:
        client.trigger("boom", "error")
    assert server.closed
    assert client.closed
    client.close()
    with pytest.raises(PagerDutyError, match="closed"):
        client.trigger("boom", "error")
    assert len(server.requests) == 1
    assert "closed" in repr(client)


def test_async_context_manager_closes() -> None:
    server = Server()

    async def scenario() -> AsyncEventsClient:
        async with AsyncEventsClient(KEY, transport=server.transport()) as client:
            await client.trigger("boom", "error")
        await client.close()
        with pytest.raises(PagerDutyError, match="closed"):
            await client.trigger("boom", "error")
        return client

    client = run(scenario())
    assert client.closed
    assert server.closed
    assert len(server.requests) == 1


def test_closing_during_a_retry_stops_the_send(mode: str) -> None:
    h = Harness(mode, [503] * 5)
    if isinstance(h.client, AsyncEventsClient):
        h.time.during_async_sleep = h.client.close
    else:
        h.time.during_sleep = h.client.close
    with pytest.raises(PagerDutyError, match="closed") as caught:
        h.call("trigger", "boom", "error")
    assert not isinstance(caught.value, DeliveryError)
    assert len(h.server.requests) == 1


def test_closing_while_a_request_starts_is_a_pagerduty_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = EventsClient(KEY, transport=Server().transport())
    original = httpx.Client.post

    def close_first(self: httpx.Client, *args: Any, **kwargs: Any) -> httpx.Response:
        client.close()  # another thread's close() won the race
        return original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "post", close_first)
    with pytest.raises(PagerDutyError, match="closed during the request"):
        client.trigger("boom", "error")


def test_closing_an_unused_client_is_fine(mode: str) -> None:
    h = Harness(mode)
    h.close()
    h.close()
    assert not h.server.closed  # no connections were ever opened


def test_threads_can_share_a_client() -> None:
    server = Server()
    client = EventsClient(KEY, transport=server.transport())
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                client.trigger(f"thread {n} event {i}", "info")
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(server.requests) == 80
    client.close()


# -- route_events: the public seam pd_integrations.testing captures through ----------


def test_route_events_answers_for_every_client_like_pagerduty(mode: str) -> None:
    h = Harness(mode)
    seen: list[tuple[str, dict[str, object]]] = []
    answers = iter([500, 202, 202, 202])

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        return httpx.Response(next(answers), json={"dedup_key": body.get("dedup_key")})

    with client_module.route_events(handler):
        trigger = h.call("trigger", "boom", "critical")
        change = h.call("change", "deployed")
        once = h.call("send_once", TriggerEvent("boom", Severity.ERROR, "tests", dedup_key="d-1"))
    assert h.server.requests == []  # the client's own transport was never used
    # The 500 was retried like any answer from PagerDuty: the same body went out twice.
    assert seen[0] == seen[1]
    assert trigger.status == "success"
    assert change == EventResponse("success", "Change event processed", None)
    assert once == EventResponse("success", "Event processed", "d-1")
    paths = [path for path, _ in seen]
    assert paths == ["/v2/enqueue", "/v2/enqueue", "/v2/change/enqueue", "/v2/enqueue"]
    first = seen[0][1]
    assert first["dedup_key"] == trigger.dedup_key
    assert first["routing_key"] == KEY
    for path, body in seen:
        assert_valid_event(path, body)
    # Outside the block the client's transport answers again.
    h.call("send_once", TriggerEvent("boom", Severity.ERROR, "tests", dedup_key="d-2"))
    assert len(h.server.requests) == 1


# -- connections on a real socket: reuse and fork safety ---------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LoopbackServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.server.ports.append(self.client_address[1])
        payload = b'{"status":"success","message":"Event processed","dedup_key":"x"}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ports: list[int] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture
def loopback() -> Iterator[_LoopbackServer]:
    server = _LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_one_connection_is_reused_across_sends(loopback: _LoopbackServer) -> None:
    with EventsClient(KEY, base_url=loopback.url) as client:
        for _ in range(3):
            assert client.trigger("boom", "error").status == "success"
    assert len(loopback.ports) == 3
    assert len(set(loopback.ports)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connections(loopback: _LoopbackServer) -> None:
    client = EventsClient(KEY, base_url=loopback.url, timeout=5.0)
    client.trigger("parent before fork", "info")
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            if client.trigger("child", "info").status == "success":
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.trigger("parent after fork", "info")
    client.close()
    parent_first, child, parent_after = loopback.ports
    # The child did not touch the parent's pooled socket, which is still usable.
    assert child != parent_first
    assert parent_after == parent_first
