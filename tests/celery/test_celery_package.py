"""``pd_integrations.celery``: the TaskMonitor imports without Celery, the integration with it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pd_integrations.celery
from pd_integrations.celery import integration

ROOT = Path(__file__).resolve().parents[2]

WITHOUT_CELERY = textwrap.dedent(
    """
    import sys

    sys.modules["celery"] = None  # what the import system does for a package not installed

    from pd_integrations.celery import TaskInfo, TaskMonitor
    from pd_integrations.celery.monitor import TaskMonitor as Monitor

    assert TaskMonitor is Monitor and TaskInfo.__module__ == "pd_integrations.celery.monitor"
    try:
        from pd_integrations.celery import PagerDuty
    except ImportError as error:
        print(f"PagerDuty: ImportError: {error}")
    else:
        print(f"PagerDuty: imported {PagerDuty!r}")
    """
)


def test_the_task_monitor_needs_no_celery() -> None:
    # A fresh interpreter: in this one Celery is imported already.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGERDUTY_")}
    env["PYTHONPATH"] = str(ROOT)
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_CELERY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    # The integration itself still needs Celery, and says so when it is asked for.
    assert ran.stdout.startswith("PagerDuty: ImportError: "), ran.stdout
    assert "celery" in ran.stdout


def test_the_integration_is_the_packages_pagerduty() -> None:
    assert pd_integrations.celery.PagerDuty is integration.PagerDuty
    assert set(pd_integrations.celery.__all__) == {"PagerDuty", "TaskInfo", "TaskMonitor"}
    with pytest.raises(AttributeError, match="no attribute 'Worker'"):
        pd_integrations.celery.Worker  # noqa: B018 - the attribute access is the test
