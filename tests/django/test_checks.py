"""System checks, run the way ``manage.py check`` runs them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from pd_integrations.django.checks import MIDDLEWARE_PATH, TAG, check_middleware, check_settings
from pd_integrations.django.middleware import PagerDutyMiddleware

KEY = "checksroutingkey0000000000000001"


class CustomPagerDutyMiddleware(PagerDutyMiddleware):
    pass


def ids(messages: list[checks.CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


def run() -> list[checks.CheckMessage]:
    return checks.run_checks(tags=[TAG])


def test_the_app_registers_its_checks() -> None:
    registered = {
        getattr(check, "__qualname__", "") for check in checks.registry.registry.get_checks()
    }
    assert {check_settings.__qualname__, check_middleware.__qualname__} <= registered
    assert checks.registry.registry.tag_exists(TAG)


def test_a_good_configuration_passes() -> None:
    with override_settings(PAGERDUTY={"ROUTING_KEY": KEY}):
        assert run() == []


def test_no_routing_key_is_a_warning() -> None:
    (message,) = run()
    assert message.id == "pd_integrations.W001"
    assert message.level == checks.WARNING
    assert message.hint is not None
    assert "PAGERDUTY_ROUTING_KEY" in message.hint


@pytest.mark.parametrize(
    ("pagerduty", "expected"),
    [
        ({"ROUTING_KEY": "abc"}, ["pd_integrations.E001"]),
        ({"ROUTING_KEY": KEY, "SLOW_REQUEST_MS": -1}, ["pd_integrations.E002"]),
        ({"ROUTING_KEY": KEY, "SLOW_REQUEST": 100}, ["pd_integrations.E003"]),
        ({"ROUTING_KEY": KEY, "DEDUP_BY": "url"}, ["pd_integrations.E004"]),
        ("key", ["pd_integrations.E006", "pd_integrations.W001"]),
        ({"ROUTING_KEY": KEY, "HEALTH_CHECKS": {"db": "nowhere.db"}}, ["pd_integrations.E010"]),
        ({"ROUTING_KEY": KEY, "STATE_URL": "mysql://db/0"}, ["pd_integrations.E018"]),
        ({"ROUTING_KEY": KEY, "SPOOL": 3}, ["pd_integrations.E019"]),
        ({"ROUTING_KEY": KEY, "FLUSH_TIMEOUT": -1}, ["pd_integrations.E020"]),
    ],
)
def test_errors_have_their_ids(pagerduty: object, expected: list[str]) -> None:
    with override_settings(PAGERDUTY=pagerduty):
        messages = run()
    assert ids(messages) == expected
    assert messages[0].level == checks.ERROR


def test_the_middleware_missing_is_a_warning() -> None:
    with override_settings(PAGERDUTY={"ROUTING_KEY": KEY}, MIDDLEWARE=[]):
        (message,) = run()
    assert message.id == "pd_integrations.W002"
    assert message.level == checks.WARNING


def test_the_middleware_twice_is_an_error() -> None:
    with override_settings(
        PAGERDUTY={"ROUTING_KEY": KEY}, MIDDLEWARE=[MIDDLEWARE_PATH, MIDDLEWARE_PATH]
    ):
        (message,) = run()
    assert message.id == "pd_integrations.E005"


def test_a_subclass_of_the_middleware_counts() -> None:
    with override_settings(
        PAGERDUTY={"ROUTING_KEY": KEY},
        MIDDLEWARE=["tests.django.test_checks.CustomPagerDutyMiddleware"],
    ):
        assert run() == []


def test_errors_stop_management_commands() -> None:
    with (
        override_settings(PAGERDUTY={"ROUTING_KEY": KEY, "DEDUP_BY": "url"}),
        pytest.raises(SystemCheckError, match=r"pd_integrations\.E004"),
    ):
        call_command("check")


def test_warnings_can_be_silenced() -> None:
    with override_settings(SILENCED_SYSTEM_CHECKS=["pd_integrations.W001"]):
        call_command("check")  # nothing raised, nothing to see


def test_delivery_settings_from_the_environment_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGERDUTY_STATE_URL", "memcached://cache:11211")
    monkeypatch.setenv("PAGERDUTY_FLUSH_TIMEOUT", "later")
    with override_settings(PAGERDUTY={"ROUTING_KEY": KEY}):
        messages = run()
    assert ids(messages) == ["pd_integrations.E018", "pd_integrations.E020"]
    assert all(message.level == checks.ERROR for message in messages)


def test_a_redis_url_without_the_redis_package_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what find_spec sees when it is missing
    with override_settings(PAGERDUTY={"ROUTING_KEY": KEY, "STATE_URL": "redis://cache:6379/0"}):
        (message,) = run()
    assert message.id == "pd_integrations.E018"
    assert "needs the redis package" in message.msg
    assert message.hint == "pip install 'pd-integrations[redis]'"


def test_a_good_redis_url_and_spool_pass(tmp_path: Path) -> None:
    pagerduty = {
        "ROUTING_KEY": KEY,
        "STATE_URL": "redis://127.0.0.1:1/0",
        "SPOOL": str(tmp_path / "pagerduty.spool"),
        "FLUSH_TIMEOUT": 5,
    }
    with override_settings(PAGERDUTY=pagerduty):
        assert run() == []


def test_a_spool_in_a_missing_directory_is_a_warning(tmp_path: Path) -> None:
    spool = str(tmp_path / "nowhere" / "pagerduty.spool")
    with override_settings(PAGERDUTY={"ROUTING_KEY": KEY, "SPOOL": spool}):
        (message,) = run()
    assert message.id == "pd_integrations.W003"
    assert message.level == checks.WARNING
