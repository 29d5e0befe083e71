"""PagerDuty's own OpenAPI examples against the emulator.

The examples carry ``+0000`` timestamps, which RFC 3339 (the OpenAPI ``date-time``
format) does not allow; PAGERDUTY.md lists this as a known defect. The emulator rejects
them as written, and accepts each example once its timestamp reads ``+00:00``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from pd_integrations.emulator import Emulator

OPENAPI: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "events-v2-openapi.json").read_text()
)
PATHS = {"/enqueue": "/v2/enqueue", "/change/enqueue": "/v2/change/enqueue"}
EXAMPLES = [
    pytest.param(PATHS[path], example["value"], id=f"{path}:{name}")
    for path, item in OPENAPI["paths"].items()
    for name, example in item["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ].items()
]


def response_schema(name: str) -> dict[str, Any]:
    return dict(OPENAPI["components"]["responses"][name]["content"]["application/json"]["schema"])


def fix_timestamp(body: dict[str, Any]) -> dict[str, Any]:
    fixed = copy.deepcopy(body)
    payload = fixed["payload"]
    payload["timestamp"] = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", payload["timestamp"])
    return fixed


def test_there_are_examples_for_both_endpoints() -> None:
    assert {p.values[0] for p in EXAMPLES} == set(PATHS.values())


@pytest.mark.parametrize(("path", "example"), EXAMPLES)
def test_example_as_published_fails_only_on_its_timestamp(
    client: httpx.Client, path: str, example: dict[str, Any]
) -> None:
    assert example["payload"]["timestamp"].endswith("+0000")
    response = client.post(path, json=example)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert len(errors) == 1
    assert "'payload.timestamp' must be an RFC 3339 date-time" in errors[0]
    jsonschema.validate(response.json(), response_schema("Error"))


@pytest.mark.parametrize(("path", "example"), EXAMPLES)
def test_example_with_rfc3339_timestamp_is_accepted(
    client: httpx.Client, emulator: Emulator, path: str, example: dict[str, Any]
) -> None:
    body = fix_timestamp(example)
    assert body["payload"]["timestamp"].endswith("+00:00")
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    jsonschema.validate(response.json(), response_schema("Success"))
    (event,) = emulator.events()
    assert event["body"] == body
    if path == "/v2/enqueue":
        success_example = OPENAPI["components"]["responses"]["Success"]["content"][
            "application/json"
        ]["examples"]["default"]["value"]
        assert set(response.json()) == set(success_example)
        assert response.json()["dedup_key"] == body["dedup_key"]
        (alert,) = emulator.alerts()
        assert alert["custom_details"] == body["payload"]["custom_details"]
        assert alert["class"] == body["payload"]["class"]
        assert alert["client_url"] == body["client_url"]
    else:
        assert emulator.alerts() == []
