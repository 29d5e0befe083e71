"""settings.PAGERDUTY and the environment, read into PagerDutySettings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from pd_integrations.client import DEFAULT_BASE_URL
from pd_integrations.django import conf
from pd_integrations.events import Link, Severity
from pd_integrations.health import CheckOptions
from pd_integrations.monitor import DEFAULT_EXCLUDE_PATHS

from .health import cache, upstream

KEY = "confroutingkey000000000000000001"
ENV_KEY = "confenvroutingkey000000000000002"


def load(raw: Any = None, **environ: str) -> tuple[conf.PagerDutySettings, list[str]]:
    settings, problems = conf.load(raw if raw is not None else {}, environ)
    return settings, [problem.id for problem in problems]


def test_defaults() -> None:
    settings, problems = load({"ROUTING_KEY": KEY})

    assert problems == []
    assert settings.enabled
    assert settings.routing_key == KEY
    assert settings.routing_key_origin == "PAGERDUTY['ROUTING_KEY']"
    assert settings.events_base_url == DEFAULT_BASE_URL
    assert settings.slow_request_ms is None
    assert settings.slow_routes == {}
    assert settings.exclude_paths == DEFAULT_EXCLUDE_PATHS
    assert settings.alert_on_handled_5xx is False
    assert settings.dedup_by == "fingerprint"
    assert settings.severity_for_status == {}
    assert settings.health_checks == ()
    assert settings.health_interval is None
    assert settings.health_show_errors is False
    assert [cls.__name__ for cls in settings.ignore_exceptions] == ["UnreadablePostError"]


def test_every_setting() -> None:
    settings, problems = load(
        {
            "ROUTING_KEY": KEY,
            "EVENTS_BASE_URL": "http://127.0.0.1:8765/",
            "SOURCE": "web-1",
            "ENVIRONMENT": "prod",
            "COMPONENT": "checkout",
            "CLIENT_URL": "https://shop.example.com",
            "SLOW_REQUEST_MS": 2500,
            "SLOW_ROUTES": {"/export/": None, "POST /login/": 500},
            "EXCLUDE_PATHS": ["/static/*"],
            "ALERT_ON_HANDLED_5XX": True,
            "SEVERITY_FOR_STATUS": {"503": "warning", 502: None},
            "DEDUP_BY": "route",
            "RUNBOOKS": {"slow_request": "https://runbooks.example.com/latency"},
            "IGNORE_EXCEPTIONS": ["builtins.TimeoutError", KeyError],
            "HEALTH_CHECKS": {"upstream": "tests.django.health.upstream"},
            "HEALTH_INTERVAL": 30,
            "HEALTH_TIMEOUT": 2.5,
            "HEALTH_FAILURE_THRESHOLD": 3,
            "HEALTH_RECOVERY_THRESHOLD": 2,
            "HEALTH_ERRORS": True,
        }
    )

    assert problems == []
    assert settings.events_base_url == "http://127.0.0.1:8765"
    assert (settings.source, settings.environment, settings.component) == (
        "web-1",
        "prod",
        "checkout",
    )
    assert settings.client_url == "https://shop.example.com"
    assert settings.slow_request_ms == 2500.0
    assert settings.slow_routes == {"/export/": None, "POST /login/": 500.0}
    assert settings.exclude_paths == ("/static/*",)
    assert settings.severity_for_status == {503: Severity.WARNING, 502: None}
    assert settings.dedup_by == "route"
    assert settings.ignore_exceptions == (TimeoutError, KeyError)
    (check,) = settings.health_checks
    assert (check.name, check.check, check.target) == (
        "upstream",
        upstream,
        "tests.django.health.upstream",
    )
    assert settings.health_interval == 30.0
    assert settings.health_timeout == 2.5
    assert (settings.health_failure_threshold, settings.health_recovery_threshold) == (3, 2)
    assert settings.health_show_errors is True


def test_environment_fallbacks() -> None:
    settings, problems = load(
        {},
        PAGERDUTY_INTEGRATION_KEY=ENV_KEY,
        PAGERDUTY_EVENTS_BASE_URL="https://events.eu.pagerduty.com",
        APP_NAME="from-env",
        APP_ENV="staging",
        APP_URL="https://app.example.com",
    )

    assert problems == []
    assert settings.routing_key == ENV_KEY
    assert settings.routing_key_origin == "environment variable PAGERDUTY_INTEGRATION_KEY"
    assert settings.events_base_url == "https://events.eu.pagerduty.com"
    assert (settings.source, settings.environment) == ("from-env", "staging")
    assert settings.client_url == "https://app.example.com"


def test_the_setting_wins_over_the_environment() -> None:
    settings, _ = load(
        {"ROUTING_KEY": KEY, "ENVIRONMENT": "prod", "SLOW_REQUEST_MS": None},
        PAGERDUTY_ROUTING_KEY=ENV_KEY,
        PAGERDUTY_SLOW_REQUEST_MS="250",
    )
    assert settings.routing_key == KEY
    assert settings.environment == "prod"
    assert settings.slow_request_ms is None  # None in the settings turns it off


def test_the_slow_request_threshold_from_the_environment() -> None:
    settings, problems = load({"ROUTING_KEY": KEY}, PAGERDUTY_SLOW_REQUEST_MS="250")
    assert problems == []
    assert settings.slow_request_ms == 250.0


@pytest.mark.parametrize("text", ["0", "-1", "fast", "nan", "inf"])
def test_an_invalid_threshold_in_the_environment_is_an_error(text: str) -> None:
    settings, problems = conf.load({"ROUTING_KEY": KEY}, {"PAGERDUTY_SLOW_REQUEST_MS": text})
    (problem,) = problems
    assert problem.id == "pd_integrations.E002"
    assert problem.msg.startswith("PAGERDUTY_SLOW_REQUEST_MS must be a positive number")
    assert settings.slow_request_ms is None


def test_a_missing_key_is_a_warning() -> None:
    settings, problems = load({})
    assert problems == ["pd_integrations.W001"]
    assert not settings.enabled
    assert settings.routing_key is None


@pytest.mark.parametrize("key", ["short", KEY + "0", KEY[:-1] + "!", 12345])
def test_a_malformed_key_is_an_error_that_never_shows_the_key(key: Any) -> None:
    settings, raw_problems = conf.load({"ROUTING_KEY": key}, {})
    (problem,) = raw_problems
    assert problem.id == "pd_integrations.E001"
    assert problem.level == "error"
    assert not settings.enabled
    assert settings.routing_key_error is not None
    if isinstance(key, str) and len(key) > 8:
        assert key.strip() not in problem.msg
        assert key.strip() not in settings.routing_key_error
        assert key.strip() not in str(settings.summary())
        assert key.strip() not in repr(settings)


def test_a_malformed_key_in_the_environment_is_an_error() -> None:
    _, problems = load({}, PAGERDUTY_ROUTING_KEY="nope")
    assert problems == ["pd_integrations.E001"]


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("SLOW_REQUEST_MS", 0, "E002"),
        ("SLOW_REQUEST_MS", -5, "E002"),
        ("SLOW_REQUEST_MS", True, "E002"),
        ("DEDUP_BY", "exception", "E004"),
        ("SLOW_ROUTES", ["/a/"], "E007"),
        ("SLOW_ROUTES", {"/a/": 0}, "E007"),
        ("SLOW_ROUTES", {3: 100}, "E007"),
        ("EXCLUDE_PATHS", ["/ok", ""], "E008"),
        ("RUNBOOKS", {"*": "not a url"}, "E009"),
        ("RUNBOOKS", "https://example.com", "E009"),
        ("HEALTH_INTERVAL", 0, "E011"),
        ("HEALTH_FAILURE_THRESHOLD", 0, "E011"),
        ("HEALTH_RECOVERY_THRESHOLD", 1.5, "E011"),
        ("EVENTS_BASE_URL", "events.pagerduty.com", "E012"),
        ("EVENTS_BASE_URL", "ftp://example.com", "E012"),
        ("SEVERITY_FOR_STATUS", {404: "error"}, "E014"),
        ("SEVERITY_FOR_STATUS", {503: "loud"}, "E014"),
        ("SEVERITY_FOR_STATUS", {"abc": "error"}, "E014"),
        ("SOURCE", 42, "E015"),
        ("ENVIRONMENT", ["prod"], "E015"),
        ("IGNORE_EXCEPTIONS", ["no.such.Error"], "E016"),
        ("IGNORE_EXCEPTIONS", ["tests.django.health.upstream"], "E016"),
        ("STATE_URL", "http://redis.internal:6379/0", "E018"),
        ("STATE_URL", "redis://redis.internal:port/0", "E018"),
        ("STATE_URL", 6379, "E018"),
        ("SPOOL", 42, "E019"),
        ("FLUSH_TIMEOUT", -1, "E020"),
        ("FLUSH_TIMEOUT", float("nan"), "E020"),
        ("FLUSH_TIMEOUT", True, "E020"),
        ("REFRESH_AFTER", -1, "E021"),
        ("REFRESH_AFTER", "soon", "E021"),
        ("REFRESH_AFTER", float("inf"), "E021"),
    ],
)
def test_an_invalid_value_is_reported_and_replaced_by_its_default(
    name: str, value: object, code: str
) -> None:
    settings, problems = conf.load({"ROUTING_KEY": KEY, name: value}, {})
    (problem,) = problems
    assert problem.id == f"pd_integrations.{code}"
    assert problem.level == "error"
    assert f"PAGERDUTY['{name}']" in problem.msg
    default, _ = conf.load({"ROUTING_KEY": KEY}, {})
    assert settings == default


def test_an_invalid_base_url_in_the_environment_falls_back_to_pagerduty() -> None:
    settings, problems = load({"ROUTING_KEY": KEY}, PAGERDUTY_EVENTS_BASE_URL="nope")
    assert problems == ["pd_integrations.E012"]
    assert settings.events_base_url == DEFAULT_BASE_URL


def test_unknown_names_are_errors_with_a_suggestion() -> None:
    _, problems = conf.load({"ROUTING_KEY": KEY, "SLOW_REQUESTS_MS": 100, "COLOUR": "red"}, {})
    assert [p.id for p in problems] == ["pd_integrations.E003", "pd_integrations.E003"]
    assert problems[0].hint == "Did you mean 'SLOW_REQUEST_MS'?"
    assert problems[1].hint is not None
    assert "ROUTING_KEY" in problems[1].hint


def test_the_setting_must_be_a_dict() -> None:
    settings, problems = load(["ROUTING_KEY"])
    assert problems == ["pd_integrations.E006", "pd_integrations.W001"]
    assert settings == load({})[0]  # every default


# -- HEALTH_CHECKS ------------------------------------------------------------------------


def test_health_checks_in_every_form() -> None:
    settings, problems = load(
        {
            "ROUTING_KEY": KEY,
            "HEALTH_CHECKS": {
                "search": {
                    "CHECK": "tests.django.health.cache",
                    "DEPENDS_ON": ["upstream"],
                    "TIMEOUT": 1,
                    "SEVERITY": "error",
                    "RUNBOOK": "https://runbooks.example.com/search",
                    "FAILURE_THRESHOLD": 3,
                    "RECOVERY_THRESHOLD": 2,
                },
                "upstream": upstream,
            },
        }
    )

    assert problems == []
    # Dependencies first, whatever the order in the settings.
    first, second = settings.health_checks
    assert (first.name, first.check, first.target) == ("upstream", upstream, "upstream")
    assert second == conf.HealthCheckSpec(
        name="search",
        check=cache,
        target="tests.django.health.cache",
        options=CheckOptions(
            timeout=1.0,
            depends_on=("upstream",),
            severity=Severity.ERROR,
            runbook=Link("https://runbooks.example.com/search", "Runbook"),
            failure_threshold=3,
            recovery_threshold=2,
        ),
    )
    # Left out, an option is the monitor's default (HEALTH_TIMEOUT...), filled in later.
    assert first.options == CheckOptions()


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("tests.django.health.nope", "cannot import"),
        ("tests.django.health.NOT_CALLABLE", "is not callable"),
        ({"TIMEOUT": 1}, "needs 'CHECK'"),
        ({"CHECK": "tests.django.health.upstream", "RETRIES": 3}, "unknown option"),
        (
            {"CHECK": "tests.django.health.upstream", "SEVERITY": "page"},
            "invalid option: severity must be one of critical, error, warning, info, not 'page'",
        ),
        ({"CHECK": "tests.django.health.upstream", "RUNBOOK": "wiki"}, "'RUNBOOK'"),
        (
            {"CHECK": "tests.django.health.upstream", "FAILURE_THRESHOLD": 0},
            "invalid option: failure_threshold must be a whole number of at least 1, not 0",
        ),
        (
            {"CHECK": "tests.django.health.upstream", "TIMEOUT": 0},
            "invalid option: timeout must be a positive number of seconds, not 0",
        ),
        (
            {"CHECK": "tests.django.health.upstream", "DEPENDS_ON": "db"},
            "invalid option: depends_on must be a list of check names, not 'db'",
        ),
        ({"CHECK": "tests.django.health.upstream", "DEPENDS_ON": ["db"]}, "depends on 'db'"),
    ],
)
def test_a_bad_health_check_is_reported_and_left_out(entry: object, fragment: str) -> None:
    settings, problems = conf.load(
        {"ROUTING_KEY": KEY, "HEALTH_CHECKS": {"bad": entry, "good": upstream}}, {}
    )
    (problem,) = problems
    assert problem.id == "pd_integrations.E010"
    assert problem.msg.startswith("PAGERDUTY['HEALTH_CHECKS']['bad'] ")
    assert fragment in problem.msg
    assert [spec.name for spec in settings.health_checks] == ["good"]


def test_health_check_cycles_are_reported() -> None:
    settings, problems = conf.load(
        {
            "ROUTING_KEY": KEY,
            "HEALTH_CHECKS": {
                "a": {"CHECK": upstream, "DEPENDS_ON": ["b"]},
                "b": {"CHECK": upstream, "DEPENDS_ON": ["a"]},
            },
        },
        {},
    )
    assert {p.id for p in problems} == {"pd_integrations.E010"}
    assert any("depends on itself" in p.msg for p in problems)
    assert settings.health_checks == ()


def test_health_checks_must_be_a_dict() -> None:
    _, problems = load({"ROUTING_KEY": KEY, "HEALTH_CHECKS": ["tests.django.health.upstream"]})
    assert problems == ["pd_integrations.E010"]


# -- caching ----------------------------------------------------------------------------------


def test_settings_are_cached_until_they_change() -> None:
    with override_settings(PAGERDUTY={"SLOW_REQUEST_MS": 100}):
        first = conf.get()
        assert conf.get() is first
        assert first.slow_request_ms == 100
        with override_settings(PAGERDUTY={"SLOW_REQUEST_MS": 200}):
            assert conf.get().slow_request_ms == 200
        assert conf.get().slow_request_ms == 100


def test_reset_reads_the_environment_again(monkeypatch: pytest.MonkeyPatch) -> None:
    assert conf.get().routing_key is None
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ENV_KEY)
    assert conf.get().routing_key is None
    conf.reset()
    assert conf.get().routing_key == ENV_KEY


def test_the_summary_masks_the_key() -> None:
    settings, _ = load({"ROUTING_KEY": KEY, "HEALTH_CHECKS": {"u": upstream}})
    summary = settings.summary()
    assert summary["routing_key"] == "****0001"
    assert KEY not in str(summary)
    assert KEY not in repr(settings)
    assert summary["health_checks"] == {"u": "upstream"}
    assert summary["ignore_exceptions"] == ["django.http.request.UnreadablePostError"]


# -- STATE_URL, SPOOL, FLUSH_TIMEOUT ----------------------------------------------------------


def test_delivery_defaults() -> None:
    settings, _ = load({"ROUTING_KEY": KEY})
    assert (settings.state_url, settings.spool, settings.flush_timeout) == (None, None, 2.0)


def test_delivery_settings(tmp_path: Path) -> None:
    spool = tmp_path / "pagerduty.spool"
    settings, problems = load(
        {
            "ROUTING_KEY": KEY,
            "STATE_URL": "redis://:s3cret@redis.internal:6379/0?prefix=shop",
            "SPOOL": spool,  # a Path is fine
            "FLUSH_TIMEOUT": 0,  # do not wait at exit
        }
    )
    assert problems == []
    assert settings.state_url == "redis://:s3cret@redis.internal:6379/0?prefix=shop"
    assert settings.spool == str(spool)
    assert settings.flush_timeout == 0.0


def test_delivery_settings_from_the_environment(tmp_path: Path) -> None:
    spool = str(tmp_path / "pagerduty.spool")
    settings, problems = load(
        {"ROUTING_KEY": KEY},
        PAGERDUTY_STATE_URL="unix:///run/redis.sock?db=1",
        PAGERDUTY_SPOOL=spool,
        PAGERDUTY_FLUSH_TIMEOUT="4.5",
    )
    assert problems == []
    assert settings.state_url == "unix:///run/redis.sock?db=1"
    assert settings.spool == spool
    assert settings.flush_timeout == 4.5


def test_the_settings_win_over_the_environment(tmp_path: Path) -> None:
    settings, problems = load(
        {"ROUTING_KEY": KEY, "STATE_URL": "memory://", "FLUSH_TIMEOUT": 1},
        PAGERDUTY_STATE_URL="redis://127.0.0.1:1/0",
        PAGERDUTY_FLUSH_TIMEOUT="9",
    )
    assert problems == []
    assert (settings.state_url, settings.flush_timeout) == ("memory://", 1.0)


@pytest.mark.parametrize(
    ("var", "text", "code", "consequence"),
    [
        ("PAGERDUTY_STATE_URL", "mysql://db/0", "E018", "alert state stays in this process"),
        ("PAGERDUTY_FLUSH_TIMEOUT", "soon", "E020", "the flush at exit waits 2 s"),
        ("PAGERDUTY_FLUSH_TIMEOUT", "-3", "E020", "the flush at exit waits 2 s"),
        ("PAGERDUTY_REFRESH_AFTER", "soon", "E021", "open alerts are refreshed every 300 s"),
    ],
)
def test_an_invalid_environment_variable_is_reported_and_not_used(
    var: str, text: str, code: str, consequence: str
) -> None:
    settings, problems = conf.load({"ROUTING_KEY": KEY}, {var: text})
    (problem,) = problems
    assert problem.id == f"pd_integrations.{code}"
    assert problem.level == "error"
    assert problem.msg.startswith(f"{var} must be")
    assert f"not {text!r} (from the environment)" in problem.msg
    assert settings == conf.load({"ROUTING_KEY": KEY}, {})[0]


def test_a_spool_in_a_missing_directory_is_a_warning(tmp_path: Path) -> None:
    spool = str(tmp_path / "missing" / "pagerduty.spool")
    for raw, env in [({"SPOOL": spool}, {}), ({}, {"PAGERDUTY_SPOOL": spool})]:
        settings, problems = conf.load({"ROUTING_KEY": KEY, **raw}, env)
        (problem,) = problems
        assert problem.id == "pd_integrations.W003"
        assert problem.level == "warning"
        assert str(tmp_path / "missing") in problem.msg
        assert settings.spool == spool  # the dispatcher falls back to memory itself


def test_the_summary_hides_the_state_url_password() -> None:
    settings, _ = load({"ROUTING_KEY": KEY, "STATE_URL": "rediss://:s3cret@redis.internal/0"})
    summary = settings.summary()
    assert summary["state_url"] is not None
    assert summary["state_url"].startswith("rediss://")
    assert "s3cret" not in str(summary)
    assert "s3cret" not in repr(settings)
    assert (summary["spool"], summary["flush_timeout"]) == (None, 2.0)


def test_an_unknown_health_check_option_lists_the_known_ones() -> None:
    entry = {"CHECK": "tests.django.health.upstream", "RETRIES": 3}
    _, problems = conf.load({"ROUTING_KEY": KEY, "HEALTH_CHECKS": {"bad": entry}}, {})
    (problem,) = problems
    assert problem.msg == "PAGERDUTY['HEALTH_CHECKS']['bad'] has unknown option(s) 'RETRIES'"
    assert problem.hint is not None
    assert problem.hint.startswith("known options: CHECK, TIMEOUT")


@pytest.mark.parametrize(
    ("raw", "env", "expected"),
    [
        ({}, {}, 300.0),
        ({}, {"PAGERDUTY_REFRESH_AFTER": "60"}, 60.0),
        ({}, {"PAGERDUTY_REFRESH_AFTER": "off"}, 0.0),
        ({"REFRESH_AFTER": 120}, {"PAGERDUTY_REFRESH_AFTER": "60"}, 120.0),
        ({"REFRESH_AFTER": 0}, {}, 0.0),
        ({"REFRESH_AFTER": "off"}, {"PAGERDUTY_REFRESH_AFTER": "60"}, 0.0),
    ],
)
def test_refresh_after_from_the_setting_else_the_environment(
    raw: dict[str, object], env: dict[str, str], expected: float
) -> None:
    settings, problems = conf.load({"ROUTING_KEY": KEY, **raw}, env)
    assert problems == []
    assert settings.refresh_after == expected
    assert settings.summary()["refresh_after"] == expected
