"""Base URLs: credentials in them never reach a repr, a log line or an error message,
and plain http:// to another machine is warned about once."""

from __future__ import annotations

import itertools
import logging

import httpx
import pytest

from pd_integrations.client import EventsClient, RetryPolicy, resolve_base_url
from pd_integrations.errors import ConfigurationError, DeliveryError, PagerDutyError
from pd_integrations.rest import RestClient
from pd_integrations.state import safe_url
from tests.transport import ScriptedTransport

KEY = "urlsafetyroutingkey0000000000001"
PASSWORD = "s3cret-pass-word"
_hosts = itertools.count(1)


def fresh_host() -> str:
    """A host name no other test used: the plain-http warning is once per URL."""
    return f"events-{next(_hosts)}.example"


def test_safe_url_masks_passwords_and_bare_user_names() -> None:
    assert safe_url(f"https://user:{PASSWORD}@h.example/x") == "https://user:****@h.example/x"
    assert safe_url("https://tok3n@h.example") == "https://****@h.example"
    assert safe_url("https://h.example:8443/v2") == "https://h.example:8443/v2"


def test_credentials_are_masked_in_reprs() -> None:
    url = f"https://user:{PASSWORD}@{fresh_host()}"
    with EventsClient(KEY, base_url=url) as events:
        assert PASSWORD not in repr(events)
        assert "user:****@" in repr(events)
        assert events.base_url == url  # still what httpx authenticates with
    with RestClient("rest-api-key-0123", base_url=url) as rest:
        assert PASSWORD not in repr(rest)
        assert "user:****@" in repr(rest)


@pytest.mark.parametrize("suffix", ["/?q=1", "#frag"])
def test_credentials_are_masked_in_configuration_errors(suffix: str) -> None:
    url = f"https://user:{PASSWORD}@{fresh_host()}{suffix}"
    with pytest.raises(ConfigurationError) as events_error:
        resolve_base_url(url)
    with pytest.raises(ConfigurationError) as rest_error:
        RestClient("rest-api-key-0123", base_url=url)
    for error in (events_error.value, rest_error.value):
        assert PASSWORD not in str(error)
        assert "user:****@" in str(error)


def test_credentials_are_masked_in_logs_and_delivery_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"https://user:{PASSWORD}@{fresh_host()}"
    failure = httpx.ConnectError(f"cannot connect to {url}/v2/enqueue")
    transport = ScriptedTransport([failure, 302])
    caplog.set_level(logging.DEBUG, logger="pd_integrations")
    once = RetryPolicy(max_attempts=1)
    with EventsClient(KEY, base_url=url, retry=once, transport=transport) as client:
        with pytest.raises(DeliveryError) as unreachable:
            client.trigger("Disk full", "critical", dedup_key="disk")
        with pytest.raises(PagerDutyError) as redirected:
            client.trigger("Disk full", "critical", dedup_key="disk")
    assert len(transport.requests) == 2
    for text in (str(unreachable.value), str(redirected.value), caplog.text):
        assert PASSWORD not in text
    assert "user:****@" in str(unreachable.value)
    assert "user:****@" in str(redirected.value)
    assert "POST https://user:****@" in caplog.text


def test_plain_http_to_another_machine_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://user:{PASSWORD}@{fresh_host()}"
    with caplog.at_level(logging.WARNING, logger="pd_integrations"):
        for _ in range(3):
            EventsClient(KEY, base_url=url).close()
        RestClient("rest-api-key-0123", base_url=url).close()
    warnings = [r.getMessage() for r in caplog.records if "plain http://" in r.getMessage()]
    assert len(warnings) == 1
    assert "user:****@" in warnings[0]
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://127.8.9.10:8765",
        "http://localhost:8765",
        "http://LOCALHOST.:8765",
        "http://emulator.localhost:8765",
        "http://[::1]:8765",
        "https://events.pagerduty.com",
    ],
)
def test_loopback_http_and_https_are_not_warned_about(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pd_integrations"):
        assert resolve_base_url(url) == url
    assert caplog.records == []
