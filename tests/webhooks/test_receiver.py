"""The framework-neutral webhook receiver: signatures, parsing, dispatch, answers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pd_integrations import AlertManager
from pd_integrations.client import EventsClient
from pd_integrations.errors import ConfigurationError, PagerDutyError
from pd_integrations.webhooks import (
    DEFAULT_MAX_BODY_BYTES,
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    WebhookError,
    WebhookEvent,
    WebhookReceiver,
    parse_secrets,
    parse_webhook,
    sign_body,
    verify_signature,
    webhook_received,
)
from tests.transport import FAST, ScriptedTransport, wait_until
from tests.webhook_payloads import (
    OTHER_SECRET,
    SECRET,
    VECTOR,
    delivery,
    encode,
    envelope,
    incident_data,
    signed_headers,
)

# -- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTOR["cases"], ids=[c["name"] for c in VECTOR["cases"]])
def test_known_good_vector(case: dict[str, Any]) -> None:
    body = case.get("body_override", VECTOR["body"]).encode("utf-8")
    assert verify_signature(body, case["header"], VECTOR["secret"]) is case["valid"]
    assert verify_signature(body, case["header"], [OTHER_SECRET, VECTOR["secret"]]) is case["valid"]


def test_the_vector_body_is_the_one_signed() -> None:
    valid = next(c for c in VECTOR["cases"] if c["name"] == "valid")
    assert sign_body(VECTOR["body"].encode("utf-8"), VECTOR["secret"]) == valid["header"]


def test_a_re_serialised_body_fails() -> None:
    raw = VECTOR["body"].encode("utf-8")
    header = sign_body(raw, VECTOR["secret"])
    for reserialised in (
        json.dumps(json.loads(raw)),
        json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True),
        json.dumps(json.loads(raw), separators=(",", ":"), indent=1),
    ):
        assert reserialised.encode() != raw
        assert not verify_signature(reserialised.encode(), header, VECTOR["secret"])


secrets_st = st.text(min_size=1, max_size=40)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=512),
    signing=secrets_st,
    others=st.lists(secrets_st, max_size=3),
    noise=st.lists(st.sampled_from(["v0=abc", "v2=", "v1=00ff", "x", " ", "v1="]), max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_own_signatures_verify_in_any_header_order(
    body: bytes, signing: str, others: list[str], noise: list[str], order: Any
) -> None:
    entries = [sign_body(body, signing), *(sign_body(body + b"x", s) for s in others), *noise]
    order.shuffle(entries)
    header = ",".join(entries)
    accepted = [*others, signing]
    order.shuffle(accepted)
    assert verify_signature(body, header, accepted)
    assert verify_signature(body, header, signing)
    assert not verify_signature(body, header, [s for s in others if s != signing])


@settings(max_examples=100, derandomize=True, deadline=None)
@given(body=st.binary(min_size=1, max_size=256), secret=secrets_st, flip=st.integers(0, 63))
def test_a_changed_signature_fails(body: bytes, secret: str, flip: int) -> None:
    digest = sign_body(body, secret)[3:]
    changed = digest[:flip] + ("0" if digest[flip] != "0" else "1") + digest[flip + 1 :]
    assert not verify_signature(body, f"v1={changed}", secret)
    assert not verify_signature(body + b" ", sign_body(body, secret), secret)


def test_only_v1_entries_count() -> None:
    body = b'{"event":{}}'
    digest = sign_body(body, SECRET)[3:]
    assert not verify_signature(body, f"v0={digest}", SECRET)
    assert not verify_signature(body, f"v2={digest},sha256={digest}", SECRET)
    assert verify_signature(body, f"v0={digest}, v1={digest}", SECRET)
    assert verify_signature(body, f"v1={digest.upper()}", SECRET)
    assert not verify_signature(body, "v1=é" + digest, SECRET)  # non-ASCII: no TypeError


def test_no_secret_header_or_body_never_verifies() -> None:
    body = b'{"event":{}}'
    header = sign_body(body, SECRET)
    assert not verify_signature(body, header, [])
    assert not verify_signature(body, header, [""])
    # Signed with an empty key, as anyone could: an empty secret must not accept it.
    assert not verify_signature(body, sign_body(body, ""), "")
    assert not verify_signature(body, sign_body(body, ""), [""])
    assert not verify_signature(body, "", SECRET)
    assert not verify_signature(body, None, SECRET)
    assert not verify_signature(b"", sign_body(b"", SECRET), SECRET)


def test_parse_secrets() -> None:
    assert parse_secrets(" one, two\nthree  one ") == ("one", "two", "three")
    assert parse_secrets(["a", "b c", ""]) == ("a", "b", "c")
    assert parse_secrets(None) == ()
    with pytest.raises(ConfigurationError, match="strings"):
        parse_secrets([b"bytes"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="bytes"):
        parse_secrets(b"bytes")  # type: ignore[arg-type]


# -- configuration ----------------------------------------------------------------------


def test_a_receiver_needs_a_secret() -> None:
    with pytest.raises(ConfigurationError, match="PAGERDUTY_WEBHOOK_SECRET"):
        WebhookReceiver(environ={})
    with pytest.raises(ConfigurationError, match="PAGERDUTY_WEBHOOK_SECRET"):
        WebhookReceiver(" , ", environ={})
    with pytest.raises(ConfigurationError):
        WebhookReceiver([], environ={})


def test_secrets_fall_back_to_the_environment() -> None:
    receiver = WebhookReceiver(environ={"PAGERDUTY_WEBHOOK_SECRET": f"{OTHER_SECRET}, {SECRET}"})
    assert receiver.secrets == (OTHER_SECRET, SECRET)
    body, headers = delivery()
    assert receiver.handle(body, headers).status == 200


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_body_bytes", 0),
        ("max_body_bytes", True),
        ("max_body_bytes", 1.5),
        ("redelivery_memory", -1),
        ("redelivery_memory", "10"),
    ],
)
def test_bad_options_are_refused(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        WebhookReceiver(SECRET, **{option: value})


def test_secrets_from_a_callable_are_read_per_request() -> None:
    current: list[str] = []
    receiver = WebhookReceiver(lambda: current)
    body, headers = delivery()
    result = receiver.handle(body, headers)
    assert (result.status, result.body) == (500, {"error": "webhook secret not configured"})
    current.append(SECRET)
    assert receiver.handle(body, headers).status == 200


def test_errors_belong_to_the_library_hierarchy() -> None:
    assert issubclass(WebhookError, PagerDutyError)
    assert issubclass(WebhookError, ValueError)


# -- parsing ----------------------------------------------------------------------------


def test_v3_incident_event() -> None:
    (event,) = parse_webhook(VECTOR["body"].encode())
    assert event.id == "01BWDWL3NYY7LUFPZCC28QUCMK"
    assert event.event_type == "incident.priority_updated"
    assert event.resource_type == "incident"
    assert event.occurred_at == datetime(2021, 4, 26, 17, 36, 27, 458000, tzinfo=UTC)
    assert event.agent is not None
    assert event.agent.summary == "Tenex Engineer"
    assert event.client is None
    assert event.version == "v3"
    incident = event.incident
    assert incident is not None
    assert (incident.id, incident.number, incident.status, incident.urgency) == (
        "PGR0VU2",
        2,
        "triggered",
        "high",
    )
    assert incident.title == "A little bump in the road"
    assert incident.html_url == "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert incident.service is not None
    assert incident.service.summary == "API Service"
    assert [a.id for a in incident.assignees] == ["PTUXL6G"]
    assert incident.priority is not None
    assert incident.priority.summary == "P1"
    assert incident.escalation_policy is not None
    assert incident.escalation_policy.id == "PUS0KTE"
    assert [t.summary for t in incident.teams] == ["Engineering"]
    assert event.incident_id == "PGR0VU2"
    # What is not modelled stays reachable.
    assert incident.raw["conference_bridge"]["conference_url"] == "https://example.com"
    assert event.raw["data"]["resolve_reason"] is None


def test_incident_key_and_created_at() -> None:
    (event,) = parse_webhook(encode(envelope("incident.triggered")))
    assert event.incident is not None
    assert event.incident.incident_key == "prod:exception:0a1b2c3d"
    assert event.incident.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_annotated_incident_has_a_note() -> None:
    data = {
        "id": "PNOTE01",
        "type": "incident_note",
        "content": "Rolled back to v1.4.2",
        "trimmed": False,
        "incident": {"id": "PINC001", "type": "incident_reference", "summary": "Disk full"},
    }
    (event,) = parse_webhook(encode(envelope("incident.annotated", data)))
    assert event.incident is None
    assert event.note is not None
    assert event.note.content == "Rolled back to v1.4.2"
    assert event.note.incident is not None
    assert event.note.incident.id == "PINC001"
    assert event.incident_id == "PINC001"


def test_ping_and_unknown_types_parse() -> None:
    (ping,) = parse_webhook(encode(envelope("pagey.ping")))
    assert (ping.event_type, ping.resource_type, ping.incident, ping.incident_id) == (
        "pagey.ping",
        "pagey",
        None,
        None,
    )
    data = {"id": "PRESP", "type": "incident_responder", "incident": {"id": "PINC9"}}
    (other,) = parse_webhook(encode(envelope("incident.responder.added", data)))
    assert other.incident is None
    assert other.incident_id == "PINC9"
    (service,) = parse_webhook(encode(envelope("service.created", {"id": "PSVC9"})))
    assert service.resource_type == "service"
    assert service.data["id"] == "PSVC9"


def test_oddly_typed_incident_fields_are_left_out_not_refused() -> None:
    data = incident_data(number="42", assignees="nobody", service=7, created_at="yesterday")
    (event,) = parse_webhook(encode(envelope("incident.triggered", data)))
    assert event.incident is not None
    assert (event.incident.number, event.incident.assignees, event.incident.service) == (
        None,
        (),
        None,
    )
    assert event.incident.created_at is None


def test_legacy_v2_messages_are_mapped() -> None:
    incident = {
        "id": "PLEGACY",
        "incident_number": 7,
        "title": "Old style",
        "status": "acknowledged",
        "urgency": "low",
        "incident_key": "legacy-key",
        "html_url": "https://acme.pagerduty.com/incidents/PLEGACY",
        "service": {"id": "PSVC", "name": "Legacy API", "summary": "Legacy API"},
        "assignments": [{"assignee": {"id": "PUSR", "summary": "Ann"}}],
    }
    body = {
        "messages": [
            {
                "id": "msg-1",
                "event": "incident.acknowledge",
                "created_on": "2020-01-02T03:04:05Z",
                "incident": incident,
                "log_entries": [{"agent": {"id": "PUSR", "summary": "Ann"}}],
            },
            {
                "id": "msg-2",
                "event": "incident.annotate",
                "created_on": "2020-01-02T03:05:00Z",
                "incident": incident,
                "log_entries": [{"id": "PLOG", "channel": {"summary": "looking into it"}}],
            },
            {"event": "incident.custom", "created_on": "2020-01-02T03:06:00Z", "incident": {}},
        ]
    }
    ack, note, custom = parse_webhook(encode(body))
    assert (ack.id, ack.event_type, ack.version) == ("msg-1", "incident.acknowledged", "v2")
    assert ack.incident is not None
    assert (ack.incident.number, ack.incident.status, ack.incident.incident_key) == (
        7,
        "acknowledged",
        "legacy-key",
    )
    assert [a.summary for a in ack.incident.assignees] == ["Ann"]
    assert ack.agent is not None
    assert ack.agent.id == "PUSR"
    assert note.event_type == "incident.annotated"
    assert note.note is not None
    assert note.note.content == "looking into it"
    assert note.incident_id == "PLEGACY"
    assert custom.event_type == "incident.custom"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"hello": 1}', "not a PagerDuty webhook"),
        (b'{"messages": []}', "not a PagerDuty webhook"),
        (b'{"event": []}', "event must be a JSON object"),
        (encode({"event": {"id": "E1", "occurred_at": "2024-01-01T00:00:00Z"}}), "event_type"),
        (encode({"event": {"id": "E1", "event_type": "x.y"}}), "occurred_at"),
        (
            encode({"event": {"id": "E1", "event_type": "x.y", "occurred_at": "Tuesday"}}),
            "ISO 8601",
        ),
        (
            encode(
                {
                    "event": {
                        "id": "E1",
                        "event_type": "x.y",
                        "occurred_at": "2024-01-01T00:00:00Z",
                        "data": [1],
                    }
                }
            ),
            "data must be an object",
        ),
        (
            encode({"event": {"event_type": "x.y", "occurred_at": "2024-01-01T00:00:00Z"}}),
            "event.id",
        ),
        (b'{"messages": ["x"]}', r"messages\[0\]"),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(WebhookError, match=message):
        parse_webhook(body)


# -- dispatch ---------------------------------------------------------------------------


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(SECRET)


def handle(receiver: WebhookReceiver, event_type: str, **kwargs: Any) -> int:
    body, headers = delivery(event_type, **kwargs)
    return receiver.handle(body, headers).status


def test_handlers_by_type_wildcard_and_catch_all(receiver: WebhookReceiver) -> None:
    calls: list[str] = []

    @receiver.on("incident.triggered", "incident.resolved")
    def exact(event: WebhookEvent) -> None:
        calls.append(f"exact:{event.event_type}")

    @receiver.on("incident.*")
    def wildcard(event: WebhookEvent) -> None:
        calls.append(f"wildcard:{event.event_type}")

    @receiver.on_any
    def every(event: WebhookEvent) -> None:
        calls.append(f"any:{event.event_type}")

    for event_type in ("incident.triggered", "incident.acknowledged", "pagey.ping"):
        assert handle(receiver, event_type) == 200
    assert calls == [
        "exact:incident.triggered",
        "wildcard:incident.triggered",
        "any:incident.triggered",
        "wildcard:incident.acknowledged",
        "any:incident.acknowledged",
        "any:pagey.ping",
    ]
    receiver.remove_handler(every)
    calls.clear()
    assert handle(receiver, "pagey.ping") == 200
    assert calls == []


def test_bad_registrations_are_refused(receiver: WebhookReceiver) -> None:
    with pytest.raises(TypeError, match="at least one"):
        receiver.on()
    with pytest.raises(TypeError, match="on_any"):
        receiver.on(print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty"):
        receiver.on(" ")
    with pytest.raises(TypeError, match="callable"):
        receiver.add_handler("x", "not callable")  # type: ignore[arg-type]


def test_async_handlers_run_from_sync_and_sync_ones_from_async(receiver: WebhookReceiver) -> None:
    threads: list[str] = []

    @receiver.on("incident.triggered")
    async def async_handler(event: WebhookEvent) -> None:
        await asyncio.sleep(0)
        threads.append(f"async:{threading.current_thread().name}")

    @receiver.on("incident.triggered")
    def sync_handler(event: WebhookEvent) -> None:
        threads.append(f"sync:{threading.current_thread().name}")

    assert handle(receiver, "incident.triggered") == 200
    body, headers = delivery()
    assert asyncio.run(receiver.ahandle(body, headers)).status == 200
    main = threading.current_thread().name
    assert threads[:2] == [f"async:{main}", f"sync:{main}"]
    # Under ahandle the sync handler ran in a worker thread, not on the loop's.
    assert threads[2] == f"async:{main}"
    assert threads[3].startswith("sync:")
    assert threads[3] != f"sync:{main}"


def test_sync_handle_with_an_async_handler_inside_a_running_loop(
    receiver: WebhookReceiver,
) -> None:
    seen: list[str] = []

    @receiver.on_any
    async def record(event: WebhookEvent) -> None:
        seen.append(event.event_type)

    async def sync_code_called_from_a_coroutine() -> int:
        return handle(receiver, "pagey.ping")

    assert asyncio.run(sync_code_called_from_a_coroutine()) == 200
    assert seen == ["pagey.ping"]


def test_default_handlers_log_when_nothing_else_matches(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pd_integrations.webhooks")
    priority = {"id": "PPRI", "type": "priority_reference", "summary": "P1"}
    for event_type in WebhookReceiver.DEFAULT_HANDLERS:
        data = incident_data(priority=priority)
        assert handle(receiver, event_type, data=data) == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "pd_integrations.webhooks"]
    lines = [line for line in lines if line.startswith("PagerDuty incident.")]
    assert len(lines) == 6
    assert lines[0] == (
        "PagerDuty incident.triggered #42 \"[500] KeyError: 'IS' - GET /orders/{order_id}/invoice\""
        " [high] on Bookshop by Bob Responder https://acme.pagerduty.com/incidents/PINC001"
    )
    assert "to Ann Oncall" in lines[3]
    assert "to Ann Oncall" in lines[4]
    assert "priority P1" in lines[5]

    caplog.clear()

    @receiver.on("incident.triggered")
    def mine(event: WebhookEvent) -> None:
        pass

    assert handle(receiver, "incident.triggered") == 200
    assert not [r for r in caplog.records if r.getMessage().startswith("PagerDuty incident.")]


def test_default_handlers_are_overridable_and_can_be_turned_off() -> None:
    seen: list[str] = []

    class Receiver(WebhookReceiver):
        def on_incident_resolved(self, event: WebhookEvent) -> None:
            seen.append(event.incident_id or "")

    assert handle(Receiver(SECRET), "incident.resolved") == 200
    assert seen == ["PINC001"]
    quiet = Receiver(SECRET, default_handlers=False)
    assert handle(quiet, "incident.resolved") == 200
    assert seen == ["PINC001"]


def test_the_signal_is_sent_once_per_accepted_event(receiver: WebhookReceiver) -> None:
    received: list[tuple[object, str, str | None]] = []

    def on_webhook(sender: object, event: WebhookEvent, webhook_id: str | None) -> None:
        received.append((sender, event.event_type, webhook_id))

    webhook_received.connect(on_webhook)
    try:
        assert handle(receiver, "pagey.ping", webhook_id="w-1") == 200
        assert handle(receiver, "pagey.ping", webhook_id="w-1") == 200  # redelivery
        failing = WebhookReceiver(SECRET)
        failing.on_any(_explode)
        assert handle(failing, "pagey.ping", webhook_id="w-2") == 500
    finally:
        webhook_received.disconnect(on_webhook)
    assert received == [(receiver, "pagey.ping", "w-1")]


def _explode(event: WebhookEvent) -> None:
    raise RuntimeError("the chat service is down")


# -- answers ----------------------------------------------------------------------------


def test_answers(receiver: WebhookReceiver) -> None:
    body, headers = delivery()
    missing = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    assert receiver.handle(body, missing).status == 400
    assert receiver.handle(b"", headers).status == 400
    bad = {**headers, SIGNATURE_HEADER: sign_body(body, OTHER_SECRET)}
    assert receiver.handle(body, bad).status == 401
    garbage = b'{"event": "nope"}'
    result = receiver.handle(garbage, signed_headers(garbage))
    assert result.status == 400
    assert "malformed webhook" in result.body["error"]
    assert receiver.handle(body, headers).status == 200
    assert handle(receiver, "pagey.ping") == 200
    assert handle(receiver, "something.new_in_2030") == 200
    result = receiver.handle(b"x" * (DEFAULT_MAX_BODY_BYTES + 1), headers)
    assert result.status == 413
    assert json.loads(result.content) == result.body
    assert result.media_type == "application/json"


def test_headers_are_found_whatever_their_case(receiver: WebhookReceiver) -> None:
    body, headers = delivery()
    lower = {k.lower(): v for k, v in headers.items()}
    assert receiver.handle(body, lower).status == 200


def test_redeliveries_are_handled_once(receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.id))
    body, headers = delivery(webhook_id="same")
    assert receiver.handle(body, headers).status == 200
    again = receiver.handle(body, headers)
    assert (again.status, again.duplicate, again.body) == (200, True, {"status": "duplicate"})
    assert len(calls) == 1


def test_without_a_webhook_id_the_event_id_dedupes(receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.id))
    body, headers = delivery()
    del headers[WEBHOOK_ID_HEADER]
    receiver.handle(body, headers)
    receiver.handle(body, headers)
    assert len(calls) == 1


def test_a_replayed_body_with_a_fresh_webhook_id_is_a_redelivery(
    receiver: WebhookReceiver,
) -> None:
    # X-Webhook-Id is not signed: a captured delivery replayed under a new id must not
    # run the handlers again, because the signed event id is the same.
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.id))
    body, headers = delivery(webhook_id="original")
    assert receiver.handle(body, headers).status == 200
    replayed = receiver.handle(body, {**headers, WEBHOOK_ID_HEADER: "forged-fresh-id"})
    assert (replayed.status, replayed.duplicate) == (200, True)
    assert asyncio.run(receiver.ahandle(body, {**headers, WEBHOOK_ID_HEADER: "another"})).duplicate
    assert len(calls) == 1


def test_a_replay_of_a_delivery_in_flight_under_a_fresh_id_waits(
    receiver: WebhookReceiver,
) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @receiver.on_any
    def slow(event: WebhookEvent) -> None:
        calls.append(event.id)
        started.set()
        release.wait(30)

    body, headers = delivery(webhook_id="first")
    worker = threading.Thread(target=lambda: receiver.handle(body, headers))
    worker.start()
    try:
        assert started.wait(30)
        fresh = {**headers, WEBHOOK_ID_HEADER: "fresh"}
        assert receiver.handle(body, fresh).status == 503
    finally:
        release.set()
        worker.join(30)
    assert receiver.handle(body, {**headers, WEBHOOK_ID_HEADER: "fresh"}).duplicate
    assert len(calls) == 1


def test_a_failed_delivery_is_retried_under_either_id(receiver: WebhookReceiver) -> None:
    attempts: list[str] = []

    @receiver.on_any
    def flaky(event: WebhookEvent) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("not yet")

    body, headers = delivery(webhook_id="first")
    assert receiver.handle(body, headers).status == 500
    # Neither key is kept after a failure: the retry runs the handlers.
    assert receiver.handle(body, {**headers, WEBHOOK_ID_HEADER: "second"}).status == 200
    assert receiver.handle(body, headers).duplicate
    assert len(attempts) == 2


def test_distinct_events_under_distinct_ids_are_all_handled(receiver: WebhookReceiver) -> None:
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.id))
    for n in range(3):
        body, headers = delivery(webhook_id=f"w-{n}")
        assert not receiver.handle(body, headers).duplicate
    assert len(set(calls)) == 3


def test_v2_messages_without_an_id_are_not_deduplicated_by_their_made_up_id(
    receiver: WebhookReceiver,
) -> None:
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.event_type))
    message = {
        "event": "incident.acknowledge",
        "created_on": "2020-01-02T03:04:05Z",
        "incident": {"id": "PLEGACY"},
    }
    body = encode({"messages": [message]})
    # Acknowledged twice (unacknowledged by a timeout in between): two deliveries whose
    # made-up event ids are the same.
    assert not receiver.handle(body, signed_headers(body, webhook_id="v2-a")).duplicate
    assert not receiver.handle(body, signed_headers(body, webhook_id="v2-b")).duplicate
    assert receiver.handle(body, signed_headers(body, webhook_id="v2-b")).duplicate
    assert len(calls) == 2


def test_redelivery_memory_is_bounded() -> None:
    receiver = WebhookReceiver(SECRET, redelivery_memory=2)
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.id))
    sent = {name: delivery(webhook_id=name) for name in ("a", "b", "c")}
    for name in ("a", "b", "c", "a"):  # "a" was forgotten when "c" came
        receiver.handle(*sent[name])
    assert len(calls) == 4
    receiver.handle(*sent["a"])
    receiver.handle(*sent["c"])
    assert len(calls) == 4


def test_redelivery_memory_can_be_turned_off() -> None:
    receiver = WebhookReceiver(SECRET, redelivery_memory=0)
    calls: list[str] = []
    receiver.on_any(lambda event: calls.append(event.id))
    body, headers = delivery(webhook_id="same")
    receiver.handle(body, headers)
    receiver.handle(body, headers)
    assert len(calls) == 2


def test_a_failing_handler_answers_500_and_the_retry_is_handled(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    @receiver.on("incident.triggered")
    def flaky(event: WebhookEvent) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the database is restarting")

    body, headers = delivery(webhook_id="retry-me")
    result = receiver.handle(body, headers)
    assert (result.status, result.body) == (500, {"error": "a webhook handler failed"})
    assert "the database is restarting" not in json.dumps(result.body)
    assert any("answering 500" in r.getMessage() and r.exc_info for r in caplog.records)
    assert receiver.handle(body, headers).status == 200
    assert receiver.handle(body, headers).duplicate
    assert len(attempts) == 2


def test_an_async_failing_handler_answers_500(receiver: WebhookReceiver) -> None:
    @receiver.on_any
    async def broken(event: WebhookEvent) -> None:
        raise RuntimeError("boom")

    body, headers = delivery()
    assert asyncio.run(receiver.ahandle(body, headers)).status == 500
    assert receiver.handle(body, headers).status == 500


def test_a_delivery_in_flight_is_not_handled_twice(receiver: WebhookReceiver) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @receiver.on_any
    def slow(event: WebhookEvent) -> None:
        calls.append(event.id)
        started.set()
        release.wait(30)

    body, headers = delivery(webhook_id="in-flight")
    first: list[int] = []
    worker = threading.Thread(target=lambda: first.append(receiver.handle(body, headers).status))
    worker.start()
    try:
        assert started.wait(30)
        assert receiver.handle(body, headers).status == 503  # PagerDuty retries later
    finally:
        release.set()
        worker.join(30)
    assert first == [200]
    assert receiver.handle(body, headers).status == 200
    assert len(calls) == 1


# -- background handlers ----------------------------------------------------------------


def test_background_handlers_run_only_when_asked(receiver: WebhookReceiver) -> None:
    calls: list[str] = []

    @receiver.on("incident.*", background=True)
    def later(event: WebhookEvent) -> None:
        calls.append(f"sync:{event.event_type}")

    @receiver.on_any(background=True)
    async def later_async(event: WebhookEvent) -> None:
        calls.append(f"async:{event.event_type}")

    @receiver.on("incident.*", background=True)
    def broken(event: WebhookEvent) -> None:
        raise RuntimeError("logged, never raised")

    body, headers = delivery()
    result = receiver.handle(body, headers)
    assert result.status == 200
    assert calls == []
    assert result.background is not None
    result.background.run()
    assert calls == ["sync:incident.triggered", "async:incident.triggered"]
    asyncio.run(result.background.arun())
    assert len(calls) == 4


def test_no_background_work_without_background_handlers(receiver: WebhookReceiver) -> None:
    body, headers = delivery()
    assert receiver.handle(body, headers).background is None


# -- reading bodies ---------------------------------------------------------------------


def test_capped_reads() -> None:
    receiver = WebhookReceiver(SECRET, max_body_bytes=10)
    assert receiver.too_large("11")
    assert receiver.too_large(11)
    assert not receiver.too_large("10")
    assert not receiver.too_large(None)
    assert not receiver.too_large("ten")

    pulled: list[int] = []

    def chunks(count: int) -> Iterator[bytes]:
        for n in range(count):
            pulled.append(n)
            yield b"1234"

    assert receiver.read_body(chunks(2)) == b"12341234"
    pulled.clear()
    assert receiver.read_body(chunks(100)) is None
    assert pulled == [0, 1, 2]  # stopped as soon as the cap was passed

    async def achunks() -> Any:
        for _ in range(100):
            yield b"1234"

    assert asyncio.run(receiver.aread_body(achunks())) is None
    assert receiver.payload_too_large().status == 413


def test_many_threads_share_one_receiver() -> None:
    receiver = WebhookReceiver(SECRET)
    calls: list[str] = []
    lock = threading.Lock()

    @receiver.on_any
    def record(event: WebhookEvent) -> None:
        with lock:
            calls.append(event.id)

    deliveries = [delivery(webhook_id=f"id-{n % 20}") for n in range(200)]
    statuses: list[int] = []

    def send(batch: list[tuple[bytes, dict[str, str]]]) -> None:
        for body, headers in batch:
            status = receiver.handle(body, headers).status
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=send, args=(deliveries[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wait_until(lambda: len(statuses) == 200)
    # A duplicate still in flight answers 503; whatever the interleaving, each id once.
    assert set(statuses) <= {200, 503}
    assert len(calls) == 20


# -- responders' actions reach the open alerts --------------------------------------------

ALERT_KEY = "prod:exception:0a1b2c3d"  # the incident_key of the payloads' incident
ROUTING_KEY = "webhookalertsynctestroutingkey01"


@pytest.fixture
def shop() -> Iterator[tuple[AlertManager, ScriptedTransport]]:
    transport = ScriptedTransport()
    client = EventsClient(ROUTING_KEY, source="shop", retry=FAST, transport=transport)
    with AlertManager(client=client, dedup_key_prefix="prod", rate_limit=None) as manager:
        yield manager, transport


def raise_the_bug(manager: AlertManager) -> str:
    return manager.alert(
        "KeyError: 'IS'", "critical", alert_type="exception", identifier="0a1b2c3d"
    )


def triggers(manager: AlertManager, transport: ScriptedTransport) -> int:
    assert manager.flush(10)
    return sum(1 for body in transport.bodies if body["event_action"] == "trigger")


def test_a_resolve_in_pagerduty_closes_the_alert_here(
    shop: tuple[AlertManager, ScriptedTransport],
) -> None:
    manager, transport = shop
    receiver = WebhookReceiver(SECRET, alerts=manager)
    assert raise_the_bug(manager) == ALERT_KEY
    raise_the_bug(manager)
    assert triggers(manager, transport) == 1  # open: the repeat was suppressed

    assert handle(receiver, "incident.acknowledged") == 200
    alert = manager.get_alert(ALERT_KEY)
    assert alert is not None
    assert alert.acknowledged

    assert handle(receiver, "incident.resolved") == 200
    assert manager.get_alert(ALERT_KEY) is None
    # The next occurrence pages at once, as PagerDuty opens a new incident for it; and
    # nothing was sent for the webhooks themselves.
    raise_the_bug(manager)
    assert triggers(manager, transport) == 2
    assert [body["event_action"] for body in transport.bodies] == ["trigger", "trigger"]


def test_by_default_every_live_manager_is_served(
    shop: tuple[AlertManager, ScriptedTransport],
) -> None:
    receiver = WebhookReceiver(SECRET)  # made before the manager's alert, and knows none
    manager, _ = shop
    raise_the_bug(manager)
    assert handle(receiver, "incident.resolved") == 200
    assert manager.get_alert(ALERT_KEY) is None


def test_alert_sync_can_be_turned_off(shop: tuple[AlertManager, ScriptedTransport]) -> None:
    manager, _ = shop
    receiver = WebhookReceiver(SECRET, alerts=())
    raise_the_bug(manager)
    assert handle(receiver, "incident.acknowledged") == 200
    assert handle(receiver, "incident.resolved") == 200
    alert = manager.get_alert(ALERT_KEY)
    assert alert is not None
    assert not alert.acknowledged


def test_only_the_incidents_own_alert_is_touched(
    shop: tuple[AlertManager, ScriptedTransport],
) -> None:
    manager, _ = shop
    receiver = WebhookReceiver(SECRET, alerts=[manager])
    raise_the_bug(manager)
    other = incident_data(incident_key="prod:exception:ffffffff")
    assert handle(receiver, "incident.resolved", data=other) == 200
    keyless = {k: v for k, v in incident_data().items() if k != "incident_key"}
    assert handle(receiver, "incident.resolved", data=keyless) == 200
    assert handle(receiver, "incident.triggered") == 200
    assert handle(receiver, "incident.escalated") == 200
    assert manager.get_alert(ALERT_KEY) is not None


def test_a_failing_manager_fails_neither_the_delivery_nor_the_others(
    shop: tuple[AlertManager, ScriptedTransport],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, _ = shop
    broken = AlertManager(None)
    try:

        def unavailable(dedup_key: str) -> bool:
            raise RuntimeError("state unavailable")

        monkeypatch.setattr(broken, "mark_resolved", unavailable)
        receiver = WebhookReceiver(SECRET, alerts=[broken, manager])
        raise_the_bug(manager)
        with caplog.at_level(logging.ERROR, "pd_integrations.webhooks"):
            assert handle(receiver, "incident.resolved") == 200
        assert manager.get_alert(ALERT_KEY) is None
        assert "could not apply incident.resolved" in caplog.text
    finally:
        broken.close(0)


def test_the_async_path_applies_them_too(shop: tuple[AlertManager, ScriptedTransport]) -> None:
    manager, _ = shop
    receiver = WebhookReceiver(SECRET, alerts=manager)
    raise_the_bug(manager)
    body, headers = delivery("incident.acknowledged")
    assert asyncio.run(receiver.ahandle(body, headers)).status == 200
    assert manager.get_alert(ALERT_KEY).acknowledged  # type: ignore[union-attr]
    body, headers = delivery("incident.resolved")
    assert asyncio.run(receiver.ahandle(body, headers)).status == 200
    assert manager.get_alert(ALERT_KEY) is None
