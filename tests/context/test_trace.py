"""Trace context: the ids of an OpenTelemetry SDK span or of a ``traceparent`` header."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pd_integrations import AlertManager
from pd_integrations.context.trace import parse_traceparent
from pd_integrations.monitor import RequestInfo, RequestMonitor
from pd_integrations.testing import CapturedEvents

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
TEMPLATE = "https://tempo.example.com/trace/{trace_id}?span={span_id}"


@pytest.fixture
def alerts(pagerduty_events: CapturedEvents) -> Iterator[AlertManager]:
    manager = AlertManager(source="web-1", rate_limit=None)
    yield manager
    manager.close()


def _fail(monitor: RequestMonitor, headers: dict[str, str] | None = None) -> None:
    try:
        raise RuntimeError("card declined")
    except RuntimeError as exc:
        monitor.exception(exc, RequestInfo("POST", "/pay", headers=headers or {}))


def _details(event: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = event["payload"]["custom_details"]
    return details


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, (TRACE_ID, SPAN_ID)),
        (TRACEPARENT.upper(), (TRACE_ID, SPAN_ID)),
        (f"01-{TRACE_ID}-{SPAN_ID}-01-future", (TRACE_ID, SPAN_ID)),
        (f"00-{TRACE_ID}-{SPAN_ID}-01-extra", None),
        (f"ff-{TRACE_ID}-{SPAN_ID}-01", None),
        (f"00-{'0' * 32}-{SPAN_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        ("00-short-00f067aa0ba902b7-01", None),
        ("", None),
        (None, None),
    ],
)
def test_traceparent_parsing(header: str | None, expected: tuple[str, str] | None) -> None:
    parsed = parse_traceparent(header)
    assert (None if parsed is None else tuple(parsed)) == expected


def test_a_traceparent_header_puts_the_ids_and_a_link_in_the_alert(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts, trace_url_template=TEMPLATE)
    _fail(monitor, {"traceparent": TRACEPARENT})
    (event,) = pagerduty_events.triggers
    assert _details(event)["trace_id"] == TRACE_ID
    assert _details(event)["span_id"] == SPAN_ID
    assert event["links"][0] == {
        "href": f"https://tempo.example.com/trace/{TRACE_ID}?span={SPAN_ID}",
        "text": f"Trace {TRACE_ID}",
    }


def test_no_trace_no_ids_and_no_link(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(alerts, trace_url_template=TEMPLATE)
    _fail(monitor, {"traceparent": "garbage"})
    (event,) = pagerduty_events.triggers
    assert "trace_id" not in _details(event)
    assert "links" not in event or event["links"] == []


def test_an_active_opentelemetry_sdk_span_wins_over_the_header(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    tracer = TracerProvider().get_tracer("tests")
    monitor = RequestMonitor(alerts, trace_url_template=TEMPLATE)
    with tracer.start_as_current_span("POST /pay") as span:
        context = span.get_span_context()
        _fail(monitor, {"traceparent": TRACEPARENT})
    (event,) = pagerduty_events.triggers
    assert _details(event)["trace_id"] == f"{context.trace_id:032x}"
    assert _details(event)["span_id"] == f"{context.span_id:016x}"
    assert f"{context.trace_id:032x}" in event["links"][0]["href"]


def test_the_trace_link_comes_before_the_runbooks(
    alerts: AlertManager, pagerduty_events: CapturedEvents
) -> None:
    monitor = RequestMonitor(
        alerts, trace_url_template=TEMPLATE, runbooks={"*": "https://runbooks.example.com"}
    )
    _fail(monitor, {"traceparent": TRACEPARENT})
    (event,) = pagerduty_events.triggers
    hrefs = [link["href"] for link in event["links"]]
    assert hrefs[0].startswith("https://tempo.example.com/")
    assert hrefs[1] == "https://runbooks.example.com"


def test_opentelemetry_is_never_imported_by_the_library() -> None:
    code = (
        "import sys\n"
        "from pd_integrations import AlertManager\n"
        "from pd_integrations.monitor import RequestMonitor, RequestInfo\n"
        "from pd_integrations.testing import capture_events\n"
        "import pd_integrations.starlette, pd_integrations.flask\n"
        "with capture_events() as captured:\n"
        "    m = RequestMonitor(AlertManager())\n"
        "    try:\n"
        "        raise ValueError('x')\n"
        "    except ValueError as e:\n"
        f"        info = RequestInfo('GET', '/', headers={{'traceparent': '{TRACEPARENT}'}})\n"
        "        m.exception(e, info)\n"
        "    print(captured.triggers[0]['payload']['custom_details']['trace_id'])\n"
        "print(sorted(n for n in sys.modules if n.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.split() == [TRACE_ID, "[]"]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://tempo.example.com/trace/{trace}", "may only use the placeholders"),
        ("https://tempo.example.com/", "must contain {trace_id} or {span_id}"),
    ],
)
def test_a_bad_trace_url_template_is_a_clear_settings_error(template: str, problem: str) -> None:
    from pd_integrations.settings import load

    settings = load(
        {"trace_url_template": template}, origin="app.config", ref=lambda s: s.env_var, environ={}
    )
    assert settings.trace_url_template is None
    (error,) = settings.errors
    assert error.code == "E031"
    assert error.message.startswith("PAGERDUTY_TRACE_URL_TEMPLATE ")
    assert problem in error.message
