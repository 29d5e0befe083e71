"""The demo ends with a short insights report of what it paged."""

from __future__ import annotations

import httpx

from pd_integrations.emulator import Emulator
from pd_integrations.emulator.demo import insights_summary


def test_demo_summary_reports_the_emulators_alerts() -> None:
    with Emulator(port=0) as emulator:
        body = {
            "routing_key": "demoinsightsroutingkey0000000001",
            "event_action": "trigger",
            "dedup_key": "prod:bookshop:exception:KeyError",
            "payload": {
                "summary": "KeyError in GET /books/{id}",
                "source": "bookshop",
                "severity": "error",
                "custom_details": {"alert_type": "exception", "exception_type": "KeyError"},
            },
        }
        with httpx.Client(base_url=emulator.url, trust_env=False) as http:
            assert http.post("/v2/enqueue", json=body).status_code == 202
        text = insights_summary(emulator)
    assert "Insights (pd-integrations report" in text
    assert "all services  1" in text
    assert "KeyError in GET /books/{id}" in text


def test_demo_summary_survives_an_unreachable_api() -> None:
    emulator = Emulator(port=0).start()
    emulator.stop()
    assert insights_summary(emulator).startswith("(no insights report:")
