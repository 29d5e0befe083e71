from __future__ import annotations

import copy

import pytest

from pd_integrations.scrub import DEFAULT_SCRUBBER, FILTERED, Scrubber


@pytest.mark.parametrize(
    "key",
    [
        "Authorization",
        "COOKIE",
        "Set-Cookie",
        "X-Api-Key",
        "apiKey",
        "api-key",
        "user_password",
        "passwd",
        "client_secret",
        "access_token",
        "sessionid",
        "X-CSRFToken",
        "xsrf-token",
        "private_key",
        "aws_credentials",
        "routing_key",
        "user ssn",
        "pwd",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert DEFAULT_SCRUBBER.is_sensitive(key)
    assert DEFAULT_SCRUBBER.scrub({key: "value"}) == {key: FILTERED}


@pytest.mark.parametrize("key", ["user", "passenger", "class_name", "business", "path", "status"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not DEFAULT_SCRUBBER.is_sensitive(key)
    assert DEFAULT_SCRUBBER.scrub({key: "value"}) == {key: "value"}


def test_nested_structures_and_header_pairs() -> None:
    data = {
        "request": {
            "headers": [["Authorization", "Bearer abc"], ["Accept", "text/html"]],
            "cookies": {"sessionid": "x"},
            "body": [{"password": "p", "name": "ann"}],
        }
    }
    original = copy.deepcopy(data)
    assert DEFAULT_SCRUBBER.scrub(data) == {  # type: ignore[arg-type]
        "request": {
            "headers": [["Authorization", FILTERED], ["Accept", "text/html"]],
            "cookies": FILTERED,
            "body": [{"password": FILTERED, "name": "ann"}],
        }
    }
    assert data == original  # never mutated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth failed for Bearer eyJhbGci.x.y", f"auth failed for Bearer {FILTERED}"),
        ("Token token=abc123 rejected", f"Token {FILTERED} rejected"),
        ("Basic dXNlcjpwYXNz", f"Basic {FILTERED}"),
        ("postgres://app:s3cret@db:5432/app", f"postgres://{FILTERED}@db:5432/app"),
        ("GET /cb?code=1&access_token=abc&x=2", f"GET /cb?code=1&access_token={FILTERED}&x=2"),
        ("plain message, nothing to hide", "plain message, nothing to hide"),
    ],
)
def test_credentials_inside_strings(text: str, expected: str) -> None:
    assert DEFAULT_SCRUBBER.scrub(text) == expected


def test_custom_keys_and_switching_off() -> None:
    extended = Scrubber(extra_keys=["email"])
    assert extended.scrub({"email": "a@b.c", "password": "x"}) == {
        "email": FILTERED,
        "password": FILTERED,
    }
    only = Scrubber(keys=["email"])
    assert only.scrub({"email": "a@b.c", "password": "x"}) == {"email": FILTERED, "password": "x"}
    off = Scrubber(enabled=False)
    assert off.scrub({"password": "x"}) == {"password": "x"}
    assert off.scrub_text("Bearer abc") == "Bearer abc"


def test_scalars_pass_through() -> None:
    assert DEFAULT_SCRUBBER.scrub([1, 2.5, None, True]) == [1, 2.5, None, True]
