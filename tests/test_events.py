from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pd_integrations.errors import ConfigurationError, InvalidEventError
from pd_integrations.events import (
    MAX_BODY_BYTES,
    TRUNCATION_MARKER,
    AcknowledgeEvent,
    ChangeEvent,
    Image,
    Link,
    ResolveEvent,
    Severity,
    TriggerEvent,
    check_routing_key,
    encode_event,
    fit_dedup_key,
    format_timestamp,
    mask_key,
)
from pd_integrations.scrub import FILTERED, Scrubber

from .spec import assert_valid_event

KEY = "0123456789abcdef0123456789abcdef"


def body_of(event: TriggerEvent | AcknowledgeEvent | ResolveEvent | ChangeEvent) -> dict[str, Any]:
    return assert_valid_event(event.path, encode_event(event, KEY))


def test_trigger_with_every_field_validates_against_the_schema() -> None:
    event = TriggerEvent(
        "Disk full on db-1",
        "critical",
        "db-1.example.com",
        dedup_key="disk/db-1",
        component="postgres",
        group="storage",
        class_="disk",
        custom_details={"free_bytes": 0, "mount": "/var"},
        images=[{"src": "https://example.com/graph.png", "alt": "graph", "href": "https://x"}],
        links=["https://runbooks.example.com/disk", Link("https://example.com", "dashboard")],
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        client="monitor",
        client_url="https://monitor.example.com",
    )
    body = body_of(event)
    assert body["event_action"] == "trigger"
    assert body["payload"]["class"] == "disk"
    assert body["payload"]["timestamp"] == "2026-01-02T03:04:05.000Z"
    assert body["links"][0] == {"href": "https://runbooks.example.com/disk"}
    assert body["images"][0]["alt"] == "graph"


@pytest.mark.parametrize("event", [AcknowledgeEvent("k"), ResolveEvent("k")])
def test_acknowledge_and_resolve_carry_only_the_key(event: AcknowledgeEvent) -> None:
    body = body_of(event)
    assert body == {"routing_key": KEY, "event_action": event.action, "dedup_key": "k"}


def test_change_event_goes_to_its_own_endpoint() -> None:
    event = ChangeEvent("Deployed v42", source="ci", custom_details={"sha": "abc"})
    assert event.path == "/v2/change/enqueue"
    body = body_of(event)
    assert body["payload"] == {
        "summary": "Deployed v42",
        "source": "ci",
        "custom_details": {"sha": "abc"},
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"severity": "fatal"}, "unknown severity"),
        ({"summary": ""}, "summary is required"),
        ({"summary": "   "}, "summary is required"),
        ({"source": ""}, "source is required"),
        ({"images": [{"src": "http://insecure/x.png"}]}, "https://"),
        ({"links": [{"text": "no href"}]}, "needs an href"),
        ({"timestamp": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"timestamp": "yesterday"}, "ISO 8601"),
        ({"component": 5}, "component must be a string"),
        ({"dedup_key": ""}, "dedup_key"),
    ],
)
def test_invalid_trigger_raises_a_clear_value_error(kwargs: dict[str, Any], message: str) -> None:
    args = {"summary": "s", "severity": "error", "source": "host"} | kwargs
    with pytest.raises(ValueError, match=message) as info:
        TriggerEvent(**args)
    assert isinstance(info.value, InvalidEventError)


@pytest.mark.parametrize("event_type", [AcknowledgeEvent, ResolveEvent])
@pytest.mark.parametrize("key", [None, ""])
def test_acknowledge_and_resolve_need_a_dedup_key(event_type: type, key: str | None) -> None:
    with pytest.raises(ValueError, match="needs the dedup_key"):
        event_type(key)


def test_severity_accepts_plain_strings_and_ranks() -> None:
    assert Severity.parse("CRITICAL") is Severity.CRITICAL
    assert Severity("warning") == "warning"
    ranks = [s.rank for s in (Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL)]
    assert ranks == sorted(ranks)


def test_long_summary_is_truncated_with_an_ellipsis() -> None:
    # Cut on the wire, after scrubbing; the event holds more so the scrubber sees it.
    summary = body_of(TriggerEvent("x" * 5000, "error", "h"))["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.endswith("…")
    # A summary of any length is capped at construction, with room to scrub past the cut.
    assert len(TriggerEvent("x" * 10_000_000, "error", "h").summary) < 10_000


def test_long_dedup_keys_become_a_stable_distinct_hash() -> None:
    a, b = "a" * 300, "a" * 299 + "b"
    assert len(fit_dedup_key(a)) == 255
    assert fit_dedup_key(a) == fit_dedup_key(a)
    assert fit_dedup_key(a) != fit_dedup_key(b)
    assert fit_dedup_key("short") == "short"
    body_of(ResolveEvent(a))


def test_timestamps_are_rfc3339_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert (
        format_timestamp(datetime(2026, 5, 1, 12, 0, tzinfo=plus_two)) == "2026-05-01T10:00:00.000Z"
    )
    assert format_timestamp("2026-05-01T12:00:00+0000") == "2026-05-01T12:00:00.000Z"
    assert format_timestamp("2026-05-01T12:00:00Z") == "2026-05-01T12:00:00.000Z"


def test_routing_key_checks_and_masking() -> None:
    assert check_routing_key(KEY) == KEY
    with pytest.raises(ConfigurationError, match="no PagerDuty routing key"):
        check_routing_key(None)
    with pytest.raises(ConfigurationError, match="32") as info:
        check_routing_key("tooshortbutsecretkey")
    assert "tooshortbutsecretkey" not in str(info.value)
    with pytest.raises(ConfigurationError):
        check_routing_key(KEY[:-1] + " ")
    assert mask_key(KEY) == "****cdef"
    assert KEY not in mask_key(KEY)


def test_custom_details_are_scrubbed_on_the_wire() -> None:
    event = TriggerEvent(
        "s",
        "error",
        "h",
        custom_details={"headers": {"Authorization": "Bearer abc"}, "user": "ann"},
    )
    details = body_of(event)["payload"]["custom_details"]
    assert details["headers"]["Authorization"] == FILTERED
    assert details["user"] == "ann"
    raw = encode_event(event, KEY, scrubber=None)
    assert b"Bearer abc" in raw
    custom = encode_event(event, KEY, scrubber=Scrubber(extra_keys=["user"]))
    assert b'"user":"ann"' not in custom


def test_non_mapping_custom_details_are_wrapped_in_an_object() -> None:
    details = body_of(TriggerEvent("s", "info", "h", custom_details=["a", 1]))["payload"]
    assert details["custom_details"] == {"details": ["a", 1]}


def test_awkward_custom_details_still_encode() -> None:
    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    details = {
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "day": date(2026, 1, 1),
        "amount": Decimal("1.10"),
        "id": UUID(int=1),
        "raw": b"\x00\xff",
        "tags": {"b", "a"},
        "severity": Severity.ERROR,
        "nan": math.nan,
        "error": ValueError("boom"),
        "cyclic": cyclic,
        "object": object(),
    }
    body = body_of(TriggerEvent("s", "error", "h", custom_details=details))
    encoded = body["payload"]["custom_details"]
    assert encoded["severity"] == "error"
    assert encoded["when"].endswith("Z")


def test_oversized_custom_details_are_shrunk_with_a_marker() -> None:
    details = {f"field{i}": "y" * 10_000 for i in range(200)}
    event = TriggerEvent("big", "critical", "h", custom_details=details)
    raw = encode_event(event, KEY)
    assert len(raw) <= MAX_BODY_BYTES
    body = assert_valid_event(event.path, raw)
    assert body["payload"]["summary"] == "big"
    assert body["payload"]["severity"] == "critical"
    assert TRUNCATION_MARKER in body["payload"]["custom_details"]


def test_one_enormous_string_is_shrunk_too() -> None:
    event = TriggerEvent("big", "error", "h", custom_details={"log": "z" * (2 * MAX_BODY_BYTES)})
    raw = encode_event(event, KEY)
    assert len(raw) <= MAX_BODY_BYTES
    assert_valid_event(event.path, raw)


def test_huge_link_lists_are_trimmed_last() -> None:
    links = [Link("https://example.com/" + "p" * 1000)] * 2000
    event = TriggerEvent("s", "error", "h", links=links)
    raw = encode_event(event, KEY)
    assert len(raw) <= MAX_BODY_BYTES
    assert json.loads(raw)["links"]


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(max_size=64),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.decimals(allow_nan=True),
    st.uuids(),
    st.sets(st.integers(), max_size=5),
)
details_strategy = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=8)
        | st.dictionaries(st.text(max_size=20), children, max_size=8)
        | st.tuples(children, children)
    ),
    max_leaves=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(details=details_strategy, summary=st.text(min_size=1).filter(str.strip))
def test_any_custom_details_give_a_valid_body(details: object, summary: str) -> None:
    event = TriggerEvent(summary, "warning", "h", custom_details=details)
    assert_valid_event(event.path, encode_event(event, KEY))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(min_value=1, max_value=400),
    size=st.integers(min_value=1000, max_value=40_000),
    char=st.sampled_from(["a", "é", "😀", "\n", '"']),
)
def test_any_large_details_fit_the_body_limit(width: int, size: int, char: str) -> None:
    details = {f"k{i}": char * size for i in range(width)}
    event = TriggerEvent("s", "error", "h", custom_details=details)
    raw = encode_event(event, KEY)
    assert len(raw) <= MAX_BODY_BYTES
    assert_valid_event(event.path, raw)


def test_image_and_link_models_validate() -> None:
    with pytest.raises(InvalidEventError):
        Image("ftp://x")
    with pytest.raises(InvalidEventError):
        Link("")
    with pytest.raises(InvalidEventError, match="a link must be"):
        TriggerEvent("s", "error", "h", links=[42])  # type: ignore[list-item]


# -- text that always encodes ----------------------------------------------------------

LONE = "\ud800"  # valid in JSON ("\ud800"), and in a Python str, but not UTF-8


def test_a_lone_surrogate_in_an_exception_message_still_gives_a_valid_body() -> None:
    body = json.loads('{"sku": "\\ud800"}')
    error = ValueError(f"unknown sku {body['sku']}")
    event = TriggerEvent(
        f"[500] ValueError: {error}", "critical", "web-1", custom_details={"error": error}
    )
    raw = encode_event(event, KEY)
    raw.decode("utf-8")  # strict: valid UTF-8
    sent = body_of(event)
    assert sent["payload"]["summary"] == "[500] ValueError: unknown sku \ufffd"
    assert sent["payload"]["custom_details"]["error"]["message"] == "unknown sku \ufffd"


def test_every_text_of_an_event_is_made_valid_utf8() -> None:
    text = f"a{LONE}b\udfff\ud83d\ude00"
    event = TriggerEvent(
        text,
        "error",
        text,
        dedup_key=text,
        component=text,
        group=text,
        class_=text,
        custom_details={text: text, "list": [text], "bytes": text.encode("utf-8", "surrogatepass")},
        links=[Link("https://example.com/" + text, text)],
        images=[Image("https://example.com/i.png" + text, "https://example.com/" + text, text)],
        client=text,
        client_url="https://example.com/" + text,
    )
    body = body_of(event)
    flat = json.dumps(body, ensure_ascii=False)
    assert LONE not in flat
    assert "a\ufffdb\ufffd😀" in body["payload"]["summary"]
    for field in ("source", "component", "group", "class"):
        assert body["payload"][field] == "a\ufffdb\ufffd😀"
    assert body["links"][0]["text"] == body["client"] == "a\ufffdb\ufffd😀"
    change = ChangeEvent(text, source=text, custom_details=text, links=[text])
    assert LONE not in json.dumps(body_of(change), ensure_ascii=False)
    for ack in (AcknowledgeEvent(text), ResolveEvent(text)):
        assert LONE not in json.dumps(body_of(ack), ensure_ascii=False)


with_surrogates = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=with_surrogates, size=st.integers(min_value=0, max_value=3000))
def test_any_text_encodes_to_a_valid_body(text: str, size: int) -> None:
    long = (text or "x") * (size // max(len(text), 1) + 1)
    event = TriggerEvent(
        "s" + long,
        "warning",
        "h" + text,
        dedup_key=text or None,
        component=long or None,
        group=text or None,
        class_=text or None,
        custom_details={text: long, "k": [text, {text: text}]},
        links=[Link("https://example.com/" + text, text or None)],
        client=text or None,
    )
    raw = encode_event(event, KEY)
    raw.decode("utf-8")
    assert len(raw) <= MAX_BODY_BYTES
    assert_valid_event(event.path, raw)


# -- scrubbed before cut ---------------------------------------------------------------

DSN = "postgres://app:S3cretPassw0rd@db/app"


@pytest.mark.parametrize("into", [1, 10, 15, 20, 24, len(DSN) - 1])
def test_a_secret_straddling_the_summary_limit_is_redacted_whole(into: int) -> None:
    summary = "x" * (1023 - into) + " " + DSN + " and more"
    sent = body_of(TriggerEvent(summary, "error", "h"))["payload"]["summary"]
    assert len(sent) <= 1024
    assert "S3cr" not in sent
    assert "app:" not in sent


def test_a_secret_straddling_the_custom_details_cut_is_redacted_whole() -> None:
    log = "x" * 8165 + " " + DSN + " tail"  # the DSN straddles the 8192-char cut
    details = body_of(TriggerEvent("s", "error", "h", custom_details={"log": log, log: 1}))[
        "payload"
    ]["custom_details"]
    assert "S3c" not in json.dumps(details)
    assert details["log"].startswith("x" * 8165 + " postgres://[Filtered]@")


def test_text_fields_are_scrubbed_by_shape() -> None:
    token = "gh" + "p_" + "A1b2C3d4" * 4 + "E5f6"  # built here so no scanner flags the file
    event = TriggerEvent(
        f"login with {token} failed",
        "error",
        f"worker {token}",
        component=f"c {token}",
        group=f"g {token}",
        class_=f"k {token}",
        client=f"cli {token}",
        links=[Link("https://example.com", f"as {token}")],
        images=[Image("https://example.com/i.png", alt=f"as {token}")],
        custom_details={f"key {token}": f"value {token}"},
    )
    raw = encode_event(event, KEY)
    assert token[4:].encode() not in raw
    body = assert_valid_event(event.path, raw)
    assert body["payload"]["summary"] == f"login with {FILTERED} failed"
    assert body["payload"]["custom_details"] == {f"key {FILTERED}": f"value {FILTERED}"}
    assert token.encode() in encode_event(event, KEY, scrubber=None)


def test_a_shrunk_body_is_scrubbed_before_it_is_cut() -> None:
    # Over 512 KB: custom_details are re-encoded with ever smaller string limits.
    # The DSN straddles the first smaller limit, 4096 characters.
    details = {f"k{i}": "y" * 4070 + " " + DSN + " " + "z" * 9000 for i in range(80)}
    raw = encode_event(TriggerEvent("big", "error", "h", custom_details=details), KEY)
    assert len(raw) <= MAX_BODY_BYTES
    assert b"S3c" not in raw


def test_link_texts_and_image_alts_are_bounded_like_other_fields() -> None:
    event = TriggerEvent(
        "s",
        "error",
        "h",
        links=[Link("https://example.com", "t" * 1_000_000)],
        images=[Image("https://example.com/i.png", alt="a" * 1_000_000)],
    )
    body = body_of(event)
    assert len(body["links"][0]["text"]) == len(body["images"][0]["alt"]) == 1024
