"""PagerDuty's Events v2 schema plus the limits its OpenAPI file leaves out.

Every event body the library emits is checked with :func:`assert_valid_event`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

DATA = Path(__file__).parent / "data"
OPENAPI: dict[str, Any] = json.loads((DATA / "events-v2-openapi.json").read_text())
MAX_BODY_BYTES = 512 * 1024
# RFC 3339 date-time: the offset is "Z" or "+hh:mm", never "+hhmm".
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _request_schema(path: str) -> dict[str, Any]:
    operation = OPENAPI["paths"][path]["post"]
    schema = dict(operation["requestBody"]["content"]["application/json"]["schema"])
    # Let "$ref": "#/components/..." resolve against the OpenAPI document itself.
    schema["components"] = OPENAPI["components"]
    return schema


SCHEMAS = {
    "/v2/enqueue": _request_schema("/enqueue"),
    "/v2/change/enqueue": _request_schema("/change/enqueue"),
}


def assert_valid_event(path: str, body: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """Validate one request body against the schema and PagerDuty's documented limits."""
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
        event = body
    else:
        raw = body.encode() if isinstance(body, str) else body
        event = json.loads(raw)
    assert len(raw) <= MAX_BODY_BYTES, f"body is {len(raw)} bytes"
    jsonschema.validate(event, SCHEMAS[path])
    assert len(event["routing_key"]) == 32
    payload = event.get("payload", {})
    if "summary" in payload:
        assert 0 < len(payload["summary"]) <= 1024
    if "timestamp" in payload:
        assert RFC3339.fullmatch(payload["timestamp"]), payload["timestamp"]
    if "custom_details" in payload:
        assert isinstance(payload["custom_details"], dict)
    for image in event.get("images", []):
        assert image["src"].startswith("https://")
    for link in event.get("links", []):
        assert link["href"]
    if path == "/v2/enqueue":
        action = event["event_action"]
        if action == "trigger":
            assert {"summary", "severity", "source"} <= payload.keys()
        else:
            assert "payload" not in event
        if action != "trigger" or "dedup_key" in event:
            assert 0 < len(event["dedup_key"]) <= 255
    else:
        assert "event_action" not in event
        assert "dedup_key" not in event
    return event
