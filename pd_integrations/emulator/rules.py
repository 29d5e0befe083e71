"""PagerDuty's Events API v2 rules, written down independently of the library's own models.

The emulator exists to check the library, so nothing here imports it: every rule comes
from PagerDuty's documentation and OpenAPI file, plus the limits the OpenAPI file leaves
out (see ``spec/PAGERDUTY.md``). Each check returns PagerDuty-style error strings rather
than raising, so one 400 answer can list every problem of a body at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

MAX_BODY_BYTES = 512 * 1024
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
ROUTING_KEY_LENGTH = 32
# Deeper documents are refused so that storing and re-serialising one can never recurse
# past Python's limit; no real event nests anywhere near this.
MAX_JSON_DEPTH = 100

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
OPTIONAL_PAYLOAD_STRINGS = ("component", "group", "class")

PARSE_ERROR = "JSON parse error"
NOT_AN_OBJECT = "Event object must be a JSON object"
CONTENT_TYPE_ERROR = "Content-Type must be application/json"
BODY_TOO_LARGE = f"Request body is larger than {MAX_BODY_BYTES // 1024} KB"
GLOBAL_RULESET_CHANGE = "Change events cannot be sent to a global ruleset routing key"

# RFC 3339 section 5.6: the offset is "Z" or "+hh:mm"; "+hhmm" (ISO 8601 basic format,
# which PagerDuty's own OpenAPI examples use) is not allowed. ASCII digits only.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def is_rfc3339(value: str) -> bool:
    """True when ``value`` is an RFC 3339 ``date-time`` naming a real instant."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    # A leap second is valid RFC 3339 but not a valid datetime: check it as :59.
    second = 59 if second == 60 else second
    try:
        offset = UTC
        if match.group(9):
            hours, minutes = int(match.group(10)), int(match.group(11))
            if minutes > 59:
                return False
            offset = timezone(timedelta(hours=hours, minutes=minutes))
        datetime(year, month, day, hour, minute, second, tzinfo=offset)
    except ValueError:
        return False
    return True


def is_json_media_type(content_type: str | None) -> bool:
    """Accept ``application/json`` with any parameters (``charset=utf-8``) in any case."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python extensions, not JSON.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # "1e999" is valid JSON but would come back out as the invalid "Infinity".
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


def _depth_exceeds(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def parse_json(raw: bytes) -> tuple[object, str | None]:
    """Decode a request body: ``(document, None)`` or ``(None, error)``; never raises."""
    try:
        document = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError):
        # UnicodeDecodeError and JSONDecodeError are ValueErrors, and so is an integer
        # with more digits than Python converts.
        return None, PARSE_ERROR
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        return None, PARSE_ERROR
    return document, None


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_routing_key(body: Mapping[str, Any]) -> list[str]:
    key = body.get("routing_key")
    if _is_blank(key):
        return ["'routing_key' is missing or blank"]
    if not isinstance(key, str):
        return ["'routing_key' must be a string"]
    if len(key) != ROUTING_KEY_LENGTH:
        return [f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"]
    if any(ch.isspace() for ch in key):
        return ["'routing_key' must not contain whitespace"]
    return []


def _check_optional_string(
    errors: list[str], container: Mapping[str, Any], name: str, at: str
) -> None:
    value = container.get(name)
    if value is not None and not isinstance(value, str):
        errors.append(f"'{at}{name}' must be a string")


def _check_summary(errors: list[str], payload: Mapping[str, Any]) -> None:
    summary = payload.get("summary")
    if _is_blank(summary):
        errors.append("'payload.summary' is missing or blank")
    elif not isinstance(summary, str):
        errors.append("'payload.summary' must be a string")
    elif len(summary) > MAX_SUMMARY:
        errors.append(
            f"Length of 'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)"
        )


def _check_common_payload(errors: list[str], payload: Mapping[str, Any]) -> None:
    """Fields shared by alert and change event payloads: timestamp and custom_details."""
    timestamp = payload.get("timestamp")
    if timestamp is not None and not (isinstance(timestamp, str) and is_rfc3339(timestamp)):
        errors.append("'payload.timestamp' must be an RFC 3339 date-time (e.g. ...T12:00:00Z)")
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict):
        errors.append("'payload.custom_details' must be a JSON object")


def _check_links(errors: list[str], body: Mapping[str, Any]) -> None:
    links = body.get("links")
    if links is None:
        return
    if not isinstance(links, list):
        errors.append("'links' must be an array")
        return
    for index, link in enumerate(links):
        at = f"links[{index}]"
        if not isinstance(link, dict):
            errors.append(f"'{at}' must be an object")
            continue
        href = link.get("href")
        if _is_blank(href):
            errors.append(f"'{at}.href' is missing or blank")
        elif not isinstance(href, str):
            errors.append(f"'{at}.href' must be a string")
        _check_optional_string(errors, link, "text", f"{at}.")


def _check_images(errors: list[str], body: Mapping[str, Any]) -> None:
    images = body.get("images")
    if images is None:
        return
    if not isinstance(images, list):
        errors.append("'images' must be an array")
        return
    for index, image in enumerate(images):
        at = f"images[{index}]"
        if not isinstance(image, dict):
            errors.append(f"'{at}' must be an object")
            continue
        src = image.get("src")
        if _is_blank(src):
            errors.append(f"'{at}.src' is missing or blank")
        elif not isinstance(src, str):
            errors.append(f"'{at}.src' must be a string")
        elif not src.lower().startswith("https://"):
            errors.append(f"'{at}.src' must be an https:// URL")
        _check_optional_string(errors, image, "href", f"{at}.")
        _check_optional_string(errors, image, "alt", f"{at}.")


def _check_dedup_key(errors: list[str], body: Mapping[str, Any], *, required: bool) -> None:
    key = body.get("dedup_key")
    if key is None or key == "":
        if required:
            errors.append("'dedup_key' is missing or blank")
        return
    if not isinstance(key, str):
        errors.append("'dedup_key' must be a string")
    elif required and not key.strip():
        errors.append("'dedup_key' is missing or blank")
    elif len(key) > MAX_DEDUP_KEY:
        errors.append(f"Length of 'dedup_key' is too long (maximum is {MAX_DEDUP_KEY} characters)")


def _check_trigger_payload(errors: list[str], body: Mapping[str, Any]) -> None:
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        return
    _check_summary(errors, payload)
    source = payload.get("source")
    if _is_blank(source):
        errors.append("'payload.source' is missing or blank")
    elif not isinstance(source, str):
        errors.append("'payload.source' must be a string")
    severity = payload.get("severity")
    if _is_blank(severity):
        errors.append("'payload.severity' is missing or blank")
    elif severity not in SEVERITIES:
        errors.append(f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})")
    for name in OPTIONAL_PAYLOAD_STRINGS:
        _check_optional_string(errors, payload, name, "payload.")
    _check_common_payload(errors, payload)


def validate_event(body: object) -> list[str]:
    """Every problem PagerDuty would report for a ``/v2/enqueue`` body (empty: valid).

    Acknowledge and resolve events need only the routing key, action and dedup key;
    PagerDuty ignores anything else they carry, so it is not checked.
    """
    if not isinstance(body, dict):
        return [NOT_AN_OBJECT]
    errors = _check_routing_key(body)
    action = body.get("event_action")
    if _is_blank(action):
        errors.append("'event_action' is missing or blank")
        return errors
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {', '.join(EVENT_ACTIONS)})")
        return errors
    if action != "trigger":
        _check_dedup_key(errors, body, required=True)
        return errors
    _check_dedup_key(errors, body, required=False)
    _check_trigger_payload(errors, body)
    _check_optional_string(errors, body, "client", "")
    _check_optional_string(errors, body, "client_url", "")
    _check_links(errors, body)
    _check_images(errors, body)
    return errors


def validate_change_event(body: object) -> list[str]:
    """Every problem PagerDuty would report for a ``/v2/change/enqueue`` body."""
    if not isinstance(body, dict):
        return [NOT_AN_OBJECT]
    errors = _check_routing_key(body)
    key = body.get("routing_key")
    if not errors and isinstance(key, str) and key.startswith("R"):
        errors.append(GLOBAL_RULESET_CHANGE)
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
    else:
        _check_summary(errors, payload)
        _check_optional_string(errors, payload, "source", "payload.")
        _check_common_payload(errors, payload)
    _check_links(errors, body)
    _check_images(errors, body)
    return errors
