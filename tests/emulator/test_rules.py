"""Every 400 rule of the Events API v2 and the Change Events API, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pd_integrations.emulator import Emulator
from pd_integrations.emulator.rules import (
    BODY_TOO_LARGE,
    CONTENT_TYPE_ERROR,
    MAX_BODY_BYTES,
    is_rfc3339,
    parse_json,
    validate_change_event,
    validate_event,
)

from .conftest import ROUTING_KEY, action_body, change_body, trigger_body

ENQUEUE = "/v2/enqueue"
CHANGE = "/v2/change/enqueue"
Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting ``a.b`` in the body (creating nothing but the last key)."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        target[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        del target[last]

    return mutate


TRIGGER_RULES: list[tuple[str, Mutation, str]] = [
    ("routing key missing", _delete("routing_key"), "'routing_key' is missing or blank"),
    ("routing key empty", _set("routing_key", ""), "'routing_key' is missing or blank"),
    ("routing key 31 chars", _set("routing_key", "k" * 31), "Length of 'routing_key'"),
    ("routing key 33 chars", _set("routing_key", "k" * 33), "Length of 'routing_key'"),
    ("routing key a number", _set("routing_key", 12345), "'routing_key' must be a string"),
    ("routing key whitespace", _set("routing_key", "k" * 31 + " "), "whitespace"),
    ("action missing", _delete("event_action"), "'event_action' is missing or blank"),
    ("action unknown", _set("event_action", "create"), "'event_action' is invalid"),
    ("action wrong case", _set("event_action", "Trigger"), "'event_action' is invalid"),
    ("action a list", _set("event_action", ["trigger"]), "'event_action' is invalid"),
    ("dedup key too long", _set("dedup_key", "d" * 256), "Length of 'dedup_key' is too long"),
    ("dedup key a number", _set("dedup_key", 7), "'dedup_key' must be a string"),
    ("payload missing", _delete("payload"), "'payload' is missing or not an object"),
    ("payload a string", _set("payload", "disk full"), "'payload' is missing or not an object"),
    ("summary missing", _delete("payload.summary"), "'payload.summary' is missing or blank"),
    ("summary blank", _set("payload.summary", "   "), "'payload.summary' is missing or blank"),
    ("summary a number", _set("payload.summary", 3), "'payload.summary' must be a string"),
    ("summary too long", _set("payload.summary", "s" * 1025), "'payload.summary' is too long"),
    ("source missing", _delete("payload.source"), "'payload.source' is missing or blank"),
    ("source a number", _set("payload.source", 1), "'payload.source' must be a string"),
    ("severity missing", _delete("payload.severity"), "'payload.severity' is missing or blank"),
    ("severity unknown", _set("payload.severity", "fatal"), "'payload.severity' is invalid"),
    ("severity upper case", _set("payload.severity", "CRITICAL"), "'payload.severity' is invalid"),
    ("timestamp +0000", _set("payload.timestamp", "2015-07-17T08:42:58.315+0000"), "RFC 3339"),
    ("timestamp no offset", _set("payload.timestamp", "2015-07-17T08:42:58"), "RFC 3339"),
    ("timestamp prose", _set("payload.timestamp", "yesterday"), "RFC 3339"),
    ("timestamp impossible", _set("payload.timestamp", "2024-02-30T00:00:00Z"), "RFC 3339"),
    ("timestamp a number", _set("payload.timestamp", 1437122578), "RFC 3339"),
    ("custom_details a string", _set("payload.custom_details", "x=1"), "must be a JSON object"),
    ("custom_details a list", _set("payload.custom_details", [1]), "must be a JSON object"),
    ("component a number", _set("payload.component", 5), "'payload.component' must be a string"),
    ("group an object", _set("payload.group", {}), "'payload.group' must be a string"),
    ("class a list", _set("payload.class", []), "'payload.class' must be a string"),
    ("client a number", _set("client", 1), "'client' must be a string"),
    ("client_url a number", _set("client_url", 1), "'client_url' must be a string"),
    ("images not a list", _set("images", {"src": "https://x"}), "'images' must be an array"),
    ("image not an object", _set("images", ["https://x"]), "'images[0]' must be an object"),
    ("image without src", _set("images", [{"alt": "graph"}]), "'images[0].src' is missing"),
    ("image over http", _set("images", [{"src": "http://x/a.png"}]), "must be an https:// URL"),
    ("image alt a number", _set("images", [{"src": "https://x", "alt": 1}]), "'images[0].alt'"),
    ("links not a list", _set("links", "https://x"), "'links' must be an array"),
    ("link not an object", _set("links", ["https://x"]), "'links[0]' must be an object"),
    ("link without href", _set("links", [{"text": "runbook"}]), "'links[0].href' is missing"),
    ("link text a number", _set("links", [{"href": "https://x", "text": 2}]), "'links[0].text'"),
]

CHANGE_RULES: list[tuple[str, Mutation, str]] = [
    ("routing key missing", _delete("routing_key"), "'routing_key' is missing or blank"),
    ("routing key short", _set("routing_key", "k" * 20), "Length of 'routing_key'"),
    ("global ruleset key", _set("routing_key", "R" + "k" * 31), "global ruleset"),
    ("payload missing", _delete("payload"), "'payload' is missing or not an object"),
    ("summary missing", _delete("payload.summary"), "'payload.summary' is missing or blank"),
    ("summary too long", _set("payload.summary", "s" * 1025), "'payload.summary' is too long"),
    ("source a number", _set("payload.source", 3), "'payload.source' must be a string"),
    ("timestamp +0000", _set("payload.timestamp", "2015-07-17T08:42:58+0000"), "RFC 3339"),
    ("custom_details a list", _set("payload.custom_details", []), "must be a JSON object"),
    ("link without href", _set("links", [{}]), "'links[0].href' is missing"),
    ("image over http", _set("images", [{"src": "http://x"}]), "must be an https:// URL"),
]


def assert_invalid(response: httpx.Response, expected: str) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(expected in error for error in body["errors"]), body["errors"]
    return list(body["errors"])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in TRIGGER_RULES],
)
def test_trigger_rule(
    client: httpx.Client, emulator: Emulator, mutate: Mutation, expected: str
) -> None:
    body = trigger_body("rule-check")
    mutate(body)
    assert_invalid(client.post(ENQUEUE, json=body), expected)
    assert emulator.alerts() == []
    assert emulator.events() == []
    (logged,) = emulator.requests()
    assert logged["status"] == 400
    assert any(expected in error for error in logged["errors"])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in CHANGE_RULES],
)
def test_change_rule(
    client: httpx.Client, emulator: Emulator, mutate: Mutation, expected: str
) -> None:
    body = change_body(source="ci", timestamp="2024-05-01T10:00:00Z")
    mutate(body)
    assert_invalid(client.post(CHANGE, json=body), expected)
    assert emulator.events() == []


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
@pytest.mark.parametrize("dedup_key", [None, "", "   ", 5])
def test_acknowledge_and_resolve_need_a_dedup_key(
    client: httpx.Client, action: str, dedup_key: object
) -> None:
    body: dict[str, Any] = {"routing_key": ROUTING_KEY, "event_action": action}
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    expected = "must be a string" if dedup_key == 5 else "'dedup_key' is missing or blank"
    assert_invalid(client.post(ENQUEUE, json=body), expected)


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_ignore_payload(client: httpx.Client, action: str) -> None:
    # PagerDuty reads only the key, action and dedup key of these events.
    body = {**action_body(action, "k1"), "payload": "anything", "images": "x"}
    assert client.post(ENQUEUE, json=body).status_code == 202


def test_limits_are_inclusive(client: httpx.Client) -> None:
    body = trigger_body("d" * 255, summary="s" * 1024)
    response = client.post(ENQUEUE, json=body)
    assert response.status_code == 202, response.text
    assert response.json()["dedup_key"] == "d" * 255
    change = client.post(CHANGE, json=change_body("c" * 1024))
    assert change.status_code == 202, change.text


def test_every_problem_is_reported_at_once(client: httpx.Client) -> None:
    body = {
        "routing_key": "short",
        "event_action": "trigger",
        "payload": {"summary": "", "severity": "loud", "custom_details": 1},
        "links": [{}],
    }
    errors = assert_invalid(client.post(ENQUEUE, json=body), "routing_key")
    assert len(errors) == 6, errors


@pytest.mark.parametrize(
    "timestamp",
    [
        "2015-07-17T08:42:58.315Z",
        "2015-07-17T08:42:58Z",
        "2015-07-17T08:42:58+00:00",
        "2015-07-17T08:42:58.315-07:00",
        "2015-07-17t08:42:58z",
        "2016-12-31T23:59:60Z",
    ],
)
def test_rfc3339_timestamps_are_accepted(client: httpx.Client, timestamp: str) -> None:
    body = trigger_body("ts", timestamp=timestamp)
    assert client.post(ENQUEUE, json=body).status_code == 202
    assert client.post(CHANGE, json=change_body(timestamp=timestamp)).status_code == 202


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2024-01-31T23:59:59Z", True),
        ("2024-01-31T23:59:59.123456+05:30", True),
        ("2024-01-31T23:59:59+0530", False),
        ("2024-01-31 23:59:59Z", False),
        ("2024-01-31T23:59Z", False),
        ("2024-13-01T00:00:00Z", False),
        ("2024-01-01T24:00:00Z", False),
        ("2024-01-01T00:00:00+24:00", False),
        ("2024-01-01T00:00:00+05:60", False),
        ("٢٠٢٤-01-01T00:00:00Z", False),  # non-ASCII digits
        ("2024-01-01T00:00:00Z\n", False),
    ],
)
def test_is_rfc3339(text: str, valid: bool) -> None:
    assert is_rfc3339(text) is valid


def test_body_over_512_kb_is_rejected(client: httpx.Client, emulator: Emulator) -> None:
    body = trigger_body("big", custom_details={"blob": ""})
    overhead = len(json.dumps(body).encode())
    body["payload"]["custom_details"]["blob"] = "x" * (MAX_BODY_BYTES - overhead)
    exact = json.dumps(body).encode()
    assert len(exact) == MAX_BODY_BYTES
    headers = {"Content-Type": "application/json"}
    assert client.post(ENQUEUE, content=exact, headers=headers).status_code == 202

    body["payload"]["custom_details"]["blob"] += "x"
    over = json.dumps(body).encode()
    response = client.post(ENQUEUE, content=over, headers=headers)
    assert_invalid(response, BODY_TOO_LARGE)
    # The body was read and discarded: the same connection keeps working.
    assert client.get("/api/health").status_code == 200
    assert [r["status"] for r in emulator.requests()] == [202, 400]
    assert emulator.requests()[1]["size"] == MAX_BODY_BYTES + 1


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "JSON parse error"),
        (b"not json", "JSON parse error"),
        (b'{"routing_key": ', "JSON parse error"),
        (b'{"a": NaN}', "JSON parse error"),
        (b"\xff\xfe{}", "JSON parse error"),
        (b"[" * 5000 + b"]" * 5000, "JSON parse error"),
        (b"[]", "Event object must be a JSON object"),
        (b'"trigger"', "Event object must be a JSON object"),
        (b"null", "Event object must be a JSON object"),
    ],
)
@pytest.mark.parametrize("path", [ENQUEUE, CHANGE])
def test_unrecognized_bodies(client: httpx.Client, path: str, content: bytes, error: str) -> None:
    response = client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": [error],
    }


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON;charset=UTF-8", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("application/jsonp", False),
        (None, False),
    ],
)
def test_content_type(client: httpx.Client, content_type: str | None, accepted: bool) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    content = json.dumps(trigger_body("ct")).encode()
    response = client.post(ENQUEUE, content=content, headers=headers)
    if accepted:
        assert response.status_code == 202, response.text
    else:
        assert_invalid(response, CONTENT_TYPE_ERROR)


def test_change_events_need_no_action_and_return_no_dedup_key(
    client: httpx.Client, emulator: Emulator
) -> None:
    response = client.post(CHANGE, json=change_body())
    assert response.status_code == 202
    assert response.json() == {"status": "success", "message": "Change event processed"}
    assert emulator.alerts() == []
    (event,) = emulator.events()
    assert event["type"] == "change"
    assert event["path"] == CHANGE


def test_validators_never_raise_on_odd_documents() -> None:
    odd: list[object] = [None, 1, "x", [], {"payload": []}, {"links": [None]}, {"images": [[]]}]
    for document in odd:
        assert validate_event(document)
        assert validate_change_event(document)
    # Numbers Python would turn into Infinity, or refuses to convert, are parse errors.
    assert parse_json(b"1e999999")[1] == "JSON parse error"
    assert parse_json(b"1" * 5000)[1] == "JSON parse error"
    assert parse_json(b'{"n": 1.5}') == ({"n": 1.5}, None)
