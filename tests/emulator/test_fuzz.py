"""Fuzzing the Events API of the emulator: whatever arrives, it answers 202, 400 or 429.

Requests come from PagerDuty's own OpenAPI file through Schemathesis (its examples,
coverage and fuzzing phases, in positive and negative mode) and from Hypothesis:
mutated valid events, arbitrary JSON, arbitrary bytes under arbitrary content types,
and bodies beyond the 512 KB limit. No fault is injected and the rate limit is off, so
a 5xx or a dropped connection can only be a bug. Every answer must also have
PagerDuty's shape: a 202 says ``"status": "success"``, a 400 lists its ``errors``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pd_integrations.emulator import Emulator

from .conftest import ROUTING_KEY

OPENAPI_FILE = Path(__file__).parents[1] / "data" / "events-v2-openapi.json"
OPENAPI: dict[str, Any] = json.loads(OPENAPI_FILE.read_text())
ENQUEUE = "/v2/enqueue"
CHANGE = "/v2/change/enqueue"
PATHS = (ENQUEUE, CHANGE)
ANSWERS = {202, 400, 429}
# Methods the emulator routes (and answers 405 with an Allow header on /v2/*); others,
# such as TRACE, are refused by the HTTP layer before routing.
ROUTED_METHODS = {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"}
KB = 1024

# An explicit (default) configuration, so no schemathesis.toml found on the way up can
# change what is generated.
schema = schemathesis.openapi.from_path(OPENAPI_FILE, config=schemathesis.Config())

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def response_schema(name: str) -> dict[str, Any]:
    return dict(OPENAPI["components"]["responses"][name]["content"]["application/json"]["schema"])


SUCCESS_SCHEMA = response_schema("Success")
ERROR_SCHEMA = response_schema("Error")


def check_answer(path: str, status: int, content: bytes) -> dict[str, Any]:
    """The property every Events API answer must have; returns the decoded body."""
    assert status in ANSWERS, f"{path} answered {status}: {content[:300]!r}"
    body = json.loads(content)
    assert isinstance(body, dict), body
    if status == 202:
        jsonschema.validate(body, SUCCESS_SCHEMA)
        assert body["status"] == "success", body
        assert isinstance(body["message"], str), body
        if path == ENQUEUE:
            assert isinstance(body["dedup_key"], str), body
            assert body["dedup_key"], body
    elif status == 400:
        jsonschema.validate(body, ERROR_SCHEMA)
        errors = body["errors"]
        assert isinstance(errors, list), body
        assert errors, body
        assert all(isinstance(error, str) and error for error in errors), body
    else:
        jsonschema.validate(body, ERROR_SCHEMA)
        assert body["status"] == "throttle event", body
    return body


@pytest.fixture(scope="module")
def fuzz_emulator() -> Iterator[Emulator]:
    # No rate limit (429s would hide everything else), no faults: any 5xx or dropped
    # connection is the emulator's own doing.
    with Emulator(port=0, rate_limit_per_minute=None) as emulator:
        yield emulator
        by_status = emulator.stats()["by_status"]
        # 405: Schemathesis probing other methods than POST (checked in the test).
        expected = {"202", "400", "405"}
        unexpected = {status: n for status, n in by_status.items() if status not in expected}
        assert not unexpected, f"the emulator logged unexpected answers: {by_status}"


@pytest.fixture(scope="module")
def http(fuzz_emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_emulator.url, timeout=15.0) as client:
        yield client


def post(
    http: httpx.Client, path: str, content: bytes, content_type: str | None = "application/json"
) -> httpx.Response:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return http.post(path, content=content, headers=headers)


# -- Schemathesis, from PagerDuty's OpenAPI file ------------------------------------------


@schema.parametrize()
@FUZZ
def test_openapi_cases(
    case: schemathesis.Case[Any], fuzz_emulator: Emulator, http: httpx.Client
) -> None:
    path = "/v2" + case.path
    response = case.call(base_url=fuzz_emulator.url + "/v2", timeout=15)
    method = case.method.upper()
    if method != "POST":
        # The coverage phase also probes methods the operation does not have.
        assert response.status_code == 405, response.content[:300]
        assert "error" in json.loads(response.content)
        if method in ROUTED_METHODS:
            assert response.headers.get("allow") == ["POST"]
        return
    check_answer(path, response.status_code, response.content)
    # The file says nothing of the routing key's length, so almost every generated body
    # fails on it alone: send object bodies again with a real key to reach the checks
    # behind it, and to get some accepted.
    if isinstance(case.body, dict):
        body = {**case.body, "routing_key": ROUTING_KEY}
        again = post(http, path, json.dumps(body).encode(), case.media_type)
        check_answer(path, again.status_code, again.content)


# -- Hypothesis: mutated events, arbitrary JSON, arbitrary bytes --------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

VALID_TRIGGER: dict[str, Any] = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": "fuzz/db1",
    "client": "Fuzz monitor",
    "client_url": "https://monitoring.example.com",
    "payload": {
        "summary": "Disk full on db1",
        "source": "db1.example.com",
        "severity": "critical",
        "timestamp": "2024-05-01T12:00:00.000+00:00",
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "disk",
        "custom_details": {"free_space": "1%", "mounts": ["/", "/var"]},
    },
    "links": [{"href": "https://example.com/runbook", "text": "Runbook"}],
    "images": [{"src": "https://example.com/graph.png", "href": "https://example.com", "alt": "x"}],
}
VALID_CHANGE: dict[str, Any] = {
    "routing_key": ROUTING_KEY,
    "payload": {
        "summary": "Deployed v42",
        "source": "deploy-bot",
        "timestamp": "2024-05-01T12:00:00Z",
        "custom_details": {"build": 42},
    },
    "links": [{"href": "https://example.com/build/42"}],
}
VALID_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (ENQUEUE, VALID_TRIGGER),
    (ENQUEUE, {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "fuzz/db1"}),
    (ENQUEUE, {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "fuzz/db1"}),
    (CHANGE, VALID_CHANGE),
]
FIELD_NAMES = sorted(
    {"routing_key", "event_action", "dedup_key", "payload", "links", "images", "client"}
    | {"client_url", "summary", "source", "severity", "timestamp", "component", "group"}
    | {"class", "custom_details", "href", "src", "text", "alt"}
)


def containers(document: object) -> list[dict[str, Any] | list[Any]]:
    """Every object and array inside ``document``, itself included."""
    found: list[dict[str, Any] | list[Any]] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            found.append(item)
            stack.extend(item)
    return found


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid event with a few fields deleted, replaced or added, at any depth."""
    path, base = draw(st.sampled_from(VALID_EVENTS))
    path = draw(st.sampled_from([path, path, *PATHS]))  # sometimes the wrong endpoint
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = draw(st.sampled_from(containers(body)))
        value = draw(ANY_JSON | st.sampled_from(["", " ", "x" * 1025, "R" * 32, "k" * 256]))
        if isinstance(target, dict):
            name = draw(st.sampled_from(sorted(target) + FIELD_NAMES))
            if name in target and draw(st.booleans()):
                del target[name]
            else:
                target[name] = value
        elif target and draw(st.booleans()):
            target[draw(st.integers(min_value=0, max_value=len(target) - 1))] = value
        else:
            target.append(value)
    return path, body


@FUZZ
@given(event=mutated_events())
def test_mutated_events(http: httpx.Client, event: tuple[str, dict[str, Any]]) -> None:
    path, body = event
    response = http.post(path, json=body)
    check_answer(path, response.status_code, response.content)


@FUZZ
@given(path=st.sampled_from(PATHS), document=ANY_JSON)
def test_arbitrary_json(http: httpx.Client, path: str, document: object) -> None:
    response = post(http, path, json.dumps(document).encode())
    answer = check_answer(path, response.status_code, response.content)
    assert response.status_code == 400
    if not isinstance(document, dict):
        assert answer["status"] == "Unrecognized object"


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/jsonx",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "text/html; charset=latin-1",
        "application/*",
        "*/*",
    ]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)

RAW_BODIES = st.binary(max_size=2 * KB) | st.sampled_from(
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"event"',
        b"NaN",
        b'{"routing_key": Infinity}',
        b"1e999",
        b"9" * 5000,
        b"\xef\xbb\xbf{}",
        b"\xff\xfe{\x00}\x00",
        b'{"a": "\xc3\x28"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 150 + b"1" + b"}" * 150,
        json.dumps(VALID_TRIGGER).encode()[:-1],
        json.dumps(VALID_TRIGGER).encode() + b"x",
        json.dumps(VALID_TRIGGER).encode("utf-16"),
    ]
)


@FUZZ
@given(path=st.sampled_from(PATHS), content=RAW_BODIES, content_type=CONTENT_TYPES)
def test_arbitrary_bytes(
    http: httpx.Client, path: str, content: bytes, content_type: str | None
) -> None:
    response = post(http, path, content, content_type)
    check_answer(path, response.status_code, response.content)
    assert response.status_code == 400


# -- content types and sizes -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json-patch+json"],
)
@pytest.mark.parametrize(("path", "body"), [(ENQUEUE, VALID_TRIGGER), (CHANGE, VALID_CHANGE)])
def test_valid_event_with_wrong_content_type(
    http: httpx.Client, path: str, body: dict[str, Any], content_type: str | None
) -> None:
    response = post(http, path, json.dumps(body).encode(), content_type)
    answer = check_answer(path, response.status_code, response.content)
    assert response.status_code == 400
    assert answer["errors"] == ["Content-Type must be application/json"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
@pytest.mark.parametrize(("path", "body"), [(ENQUEUE, VALID_TRIGGER), (CHANGE, VALID_CHANGE)])
def test_valid_event_with_json_content_type(
    http: httpx.Client, path: str, body: dict[str, Any], content_type: str
) -> None:
    response = post(http, path, json.dumps(body).encode(), content_type)
    check_answer(path, response.status_code, response.content)
    assert response.status_code == 202


def padded(base: dict[str, Any], size: int) -> bytes:
    """``base`` with custom details padded so that its JSON is exactly ``size`` bytes."""
    body = copy.deepcopy(base)
    body["payload"]["custom_details"] = {"padding": ""}
    missing = size - len(json.dumps(body).encode())
    assert missing >= 0
    body["payload"]["custom_details"]["padding"] = "x" * missing
    content = json.dumps(body).encode()
    assert len(content) == size
    return content


@pytest.mark.parametrize(("path", "base"), [(ENQUEUE, VALID_TRIGGER), (CHANGE, VALID_CHANGE)])
def test_body_of_exactly_512_kb_is_accepted(
    http: httpx.Client, path: str, base: dict[str, Any]
) -> None:
    response = post(http, path, padded(base, 512 * KB))
    check_answer(path, response.status_code, response.content)
    assert response.status_code == 202


@pytest.mark.parametrize("size", [512 * KB + 1, 700 * KB, 1024 * KB, 1024 * KB + 1, 3 * 1024 * KB])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", PATHS)
def test_body_over_512_kb_is_refused(
    http: httpx.Client, path: str, size: int, chunked: bool
) -> None:
    """Answered 400 even when the server stops reading (over 1 MB) and closes."""
    content = padded(VALID_TRIGGER, size)
    if chunked:
        pieces = [content[i : i + 64 * KB] for i in range(0, len(content), 64 * KB)]
        response = http.post(
            path, content=iter(pieces), headers={"Content-Type": "application/json"}
        )
    else:
        response = post(http, path, content)
    answer = check_answer(path, response.status_code, response.content)
    assert response.status_code == 400
    assert answer["errors"] == ["Request body is larger than 512 KB"]
