"""Multi-process servers without shared state: recognised, and said once at start-up."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import pytest
from flask import Flask

from pd_integrations.flask import PagerDuty
from pd_integrations.testing import CapturedEvents
from pd_integrations.workers import multi_process_warning, worker_server


@pytest.mark.parametrize(
    ("argv", "environ", "modules", "expected"),
    [
        (["/venv/bin/gunicorn", "-w", "4", "app:app"], {}, {}, ("gunicorn", 4)),
        (["gunicorn", "--workers=3", "app:app"], {}, {}, ("gunicorn", 3)),
        (["gunicorn", "app:app"], {"GUNICORN_CMD_ARGS": "--workers 2"}, {}, ("gunicorn", 2)),
        (["gunicorn", "app:app"], {"WEB_CONCURRENCY": "5"}, {}, ("gunicorn", 5)),
        (["gunicorn", "-w", "1", "app:app"], {}, {}, None),
        (["gunicorn", "app:app"], {}, {}, None),
        (["uvicorn", "app:app", "--workers", "2"], {}, {}, ("uvicorn", 2)),
        (["uvicorn", "app:app"], {}, {}, None),
        (["uwsgi"], {}, {"uwsgi": SimpleNamespace(numproc=4)}, ("uWSGI", 4)),
        (["uwsgi"], {}, {"uwsgi": SimpleNamespace(numproc=1)}, None),
        (["celery", "-A", "proj", "worker", "-c", "3"], {}, {}, ("Celery prefork", 3)),
        (["celery", "-A", "proj", "worker", "--pool=solo"], {}, {}, None),
        (["python", "manage.py", "runserver"], {}, {}, None),
    ],
)
def test_worker_servers_are_recognised(
    argv: list[str],
    environ: dict[str, str],
    modules: dict[str, object],
    expected: tuple[str, int] | None,
) -> None:
    assert worker_server(argv, environ, modules) == expected


def test_the_warning_says_what_happens_and_the_fix() -> None:
    argv = ["gunicorn", "-w", "2", "app:app"]
    warning = multi_process_warning(False, argv, {}, {})
    assert warning is not None
    assert "gunicorn runs 2 worker processes" in warning
    assert "one outage pages once per worker" in warning
    assert "PAGERDUTY_STATE_URL" in warning
    assert multi_process_warning(True, argv, {}, {}) is None


def test_flask_warns_once_at_start_up_under_several_gunicorn_workers(
    pagerduty_events: CapturedEvents,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sys, "argv", ["gunicorn", "-w", "2", "app:app"])
    monkeypatch.delenv("PAGERDUTY_STATE_URL", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    caplog.set_level(logging.WARNING, logger="pd_integrations.flask")
    app = Flask(__name__)

    PagerDuty(app)

    warnings = [r for r in caplog.records if "worker processes" in r.getMessage()]
    assert len(warnings) == 1
    assert "PAGERDUTY_STATE_URL" in warnings[0].getMessage()
    app.extensions["pagerduty"].close(1)
