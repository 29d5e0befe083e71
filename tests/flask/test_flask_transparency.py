"""With the extension installed, the app answers byte for byte as it does without it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from pd_integrations.testing import CapturedEvents

from .conftest import build_app

CASES = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/stream"),
    ("HEAD", "/stream"),
    ("GET", "/stream-fast"),
    ("HEAD", "/stream-fast"),
    ("GET", "/orders/1"),
    ("HEAD", "/orders/1"),
    ("GET", "/unavailable"),
    ("GET", "/abort500"),
    ("GET", "/forbidden"),
    ("GET", "/no/such/page"),
    ("POST", "/"),
    ("GET", "/background"),
    ("GET", "/async/slow"),
]


def raw(app: Flask, method: str, path: str) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """Status line, header list and the body chunks exactly as a WSGI server gets them."""
    environ = EnvironBuilder(path=path, method=method, headers=[("X-Request-ID", "r1")])
    app_iter, status, headers = run_wsgi_app(app, environ.get_environ(), buffered=True)
    return status, list(headers.to_wsgi_list()), list(app_iter)


@pytest.mark.parametrize(("method", "path"), CASES)
def test_responses_are_byte_identical(
    make_app: Callable[..., Flask],
    pagerduty_events: CapturedEvents,
    method: str,
    path: str,
) -> None:
    settings: dict[str, Any] = {"PAGERDUTY_ALERT_ON_HANDLED_5XX": True}
    bare = build_app(**settings)
    with_extension = make_app(**settings)

    assert raw(with_extension, method, path) == raw(bare, method, path)

    bare_response = bare.test_client().open(path, method=method, buffered=True)
    response = with_extension.test_client().open(path, method=method, buffered=True)
    assert response.status == bare_response.status
    assert list(response.headers) == list(bare_response.headers)
    assert response.data == bare_response.data


def test_health_endpoint_is_the_only_addition(make_app: Callable[..., Flask]) -> None:
    bare = {rule.rule for rule in build_app().url_map.iter_rules()}
    extended = {rule.rule for rule in make_app().url_map.iter_rules()}
    assert extended - bare == {"/health"}
