"""Every test captures PagerDuty events: nothing leaves the process.

``pagerduty_events`` (the pd_integrations pytest plugin) sets a test routing key in the
environment; the project's AlertManager is rebuilt inside it, so it gets that key, and
closed before it ends, so what it still queued is captured too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pd_integrations.django
from pd_integrations.testing import CapturedEvents


@pytest.fixture(autouse=True)
def pagerduty(pagerduty_events: CapturedEvents) -> Iterator[CapturedEvents]:
    pd_integrations.django.reset()  # built again by the next request, with the test key
    yield pagerduty_events
    pd_integrations.django.reset()  # closed while events are still captured
