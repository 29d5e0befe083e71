"""Every declared setting, in every framework, through its own mechanism and the environment.

One sample per setting (as text, the way an environment variable or a config file gives
it) must come out as the same checked value from Flask's ``app.config``, Django's
``PAGERDUTY``, the Starlette middleware's keyword, and ``PAGERDUTY_<NAME>`` in each of
them. And the configuration page lists exactly the declared settings, with no
framework left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Every framework at once: run where all are installed (the main suite), not in one
# framework's tox cell.
pytest.importorskip("flask")
pytest.importorskip("starlette")

from flask import Flask

from pd_integrations.django import conf
from pd_integrations.events import Severity
from pd_integrations.flask import load_settings
from pd_integrations.policy import Match, Rule
from pd_integrations.settings import SETTINGS, PagerDutySettings, Setting
from pd_integrations.settings.tasks import TASK_SETTINGS, TaskRule
from pd_integrations.starlette.middleware import KEYWORD_SETTINGS, PagerDutyMiddleware
from tests.policy_hooks import PAYMENTS_KEY, tag_team

from .conftest import ENV_VARS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# name -> (text as given, the checked value expected)
SAMPLES: dict[str, tuple[str, object]] = {
    "routing_key": ("everysettingroutingkey0000000001", "everysettingroutingkey0000000001"),
    "events_base_url": ("http://127.0.0.1:9/", "http://127.0.0.1:9"),
    "source": ("web-7", "web-7"),
    "environment": ("staging", "staging"),
    "client_url": ("https://app.example.com", "https://app.example.com"),
    "component": ("api", "api"),
    "timeout": ("3", 3.0),
    "auto_resolve_after": ("off", None),
    "refresh_after": ("60", 60.0),
    "state_url": ("memory://", "memory://"),
    "spool": ("pd-spool.sqlite3", "pd-spool.sqlite3"),
    "flush_timeout": ("4", 4.0),
    "delivery_alert_routing_key": (
        "everysettingalarmroutingkey00001",
        "everysettingalarmroutingkey00001",
    ),
    "delivery_stall_after": ("120", 120.0),
    "before_send": ("tests.policy_hooks.tag_team", tag_team),
    "routing_rules": (
        f'[{{"match": {{"path_prefix": "/payments"}}, "routing_key": "{PAYMENTS_KEY}"}}]',
        (Rule(Match(path_prefixes=("/payments",)), routing_key=PAYMENTS_KEY),),
    ),
    "release": ("v1.2.3", "v1.2.3"),
    "announce_release": ("true", True),
    "trace_url_template": ("https://t.example.com/{trace_id}", "https://t.example.com/{trace_id}"),
    "breadcrumbs": ("5", 5),
    "breadcrumb_bytes": ("off", 0),
    "send_user": ("true", True),
    "slow_request_ms": ("750", 750.0),
    "slow_routes": ('{"/reports": 5000}', {"/reports": 5000.0}),
    "exclude_paths": ("/metrics, /static", ("/metrics", "/static")),
    "alert_on_handled_5xx": ("true", True),
    "severity_for_status": ('{"503": "warning"}', {503: Severity.WARNING}),
    "dedup_by": ("route", "route"),
    "runbooks": ('{"*": "https://runbooks.example.com"}', {"*": "https://runbooks.example.com"}),
    "ignore_exceptions": ("builtins.KeyError", (KeyError,)),
    "auto_resolve": ("false", False),
    "in_app_include": ("myapp", ("myapp",)),
    "in_app_exclude": ("myapp.vendor", ("myapp.vendor",)),
    "include_headers": ("host, user-agent", ("host", "user-agent")),
    "send_client_ip": ("yes", True),
    "health_checks": ('{"cwd": "os.getcwd"}', {"cwd": "os.getcwd"}),
    "health_interval": ("15", 15.0),
    "health_timeout": ("1.5", 1.5),
    "health_failure_threshold": ("3", 3),
    "health_recovery_threshold": ("2", 2),
    "health_show_errors": ("on", True),
    "health_path": ("/ping", "/ping"),
    "webhook_secret": ("first, second", ("first", "second")),
    # background tasks
    "task_severity": ("critical", Severity.CRITICAL),
    "alert_on_attempt": ("2", 2),
    "slow_task_ms": ("60000", 60000.0),
    "include_task_args": ("false", False),
    "task_overrides": ('{"app.ping": {"severity": null}}', {"app.ping": TaskRule(severity=None)}),
}


def test_every_declared_setting_has_a_sample() -> None:
    assert set(SAMPLES) == {setting.name for setting in SETTINGS}


def _value(settings: PagerDutySettings, name: str) -> object:
    value = getattr(settings, name)
    if name == "health_checks":
        return {spec.name: spec.target for spec in value}
    return value


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _flask(given: dict[str, object]) -> PagerDutySettings:
    return load_settings({f"PAGERDUTY_{name.upper()}": value for name, value in given.items()})


def _django(given: dict[str, object]) -> PagerDutySettings:
    settings, problems = conf.load({name.upper(): value for name, value in given.items()})
    assert [p for p in problems if p.level == "error"] == []
    return settings


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


def _starlette(given: dict[str, Any]) -> PagerDutySettings:
    middleware = PagerDutyMiddleware(_nothing, **given)
    assert middleware.error is None, middleware.error
    if middleware.alerts is not None:
        middleware.alerts.close(0)
    return middleware.settings


FRAMEWORKS: dict[str, Callable[[dict[str, object]], PagerDutySettings]] = {
    "flask": _flask,
    "django": _django,
    "starlette": _starlette,
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("setting", SETTINGS, ids=[setting.name for setting in SETTINGS])
def test_each_framework_reads_each_setting_from_its_environment_variable(
    setting: Setting, framework: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.chdir(tmp_path)
    text, expected = SAMPLES[setting.name]
    clean_env.setenv(setting.env_var, text)

    settings = FRAMEWORKS[framework]({})

    assert _value(settings, setting.name) == expected
    assert settings.origin(setting.name) == f"environment variable {setting.env_var}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("setting", SETTINGS, ids=[setting.name for setting in SETTINGS])
def test_each_framework_takes_each_setting_through_its_own_mechanism(
    setting: Setting, framework: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if framework == "starlette" and setting.name not in KEYWORD_SETTINGS:
        # The webhook endpoints' setting: WebhookReceiver(secrets=) and the environment;
        # the task settings: pd_integrations.celery.PagerDuty's keywords.
        assert setting.name == "webhook_secret" or setting.name in TASK_SETTINGS
        return
    clean_env.chdir(tmp_path)
    text, expected = SAMPLES[setting.name]

    settings = FRAMEWORKS[framework]({setting.name: text})

    assert _value(settings, setting.name) == expected
    assert setting.name in settings.origins


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_invalid_value_names_the_setting_its_value_and_source(
    framework: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("PAGERDUTY_HEALTH_INTERVAL", "soon")
    message = "PAGERDUTY_HEALTH_INTERVAL must be a positive number of seconds"
    if framework == "django":
        _, problems = conf.load({})
        (problem,) = [p for p in problems if p.level == "error"]
        assert problem.id == "pd_integrations.E011"
        text = problem.msg
    elif framework == "flask":
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is checked below
            _flask({})
        assert type(caught.value).__name__ == "ConfigurationError"
        text = str(caught.value)
    else:
        middleware = PagerDutyMiddleware(_nothing)
        text = str(middleware.error)
    assert text.startswith(message), text
    assert "'soon'" in text
    assert "(from the environment)" in text


def _documented_rows() -> list[list[str]]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Every setting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_configuration_page_lists_exactly_the_declared_settings() -> None:
    rows = _documented_rows()
    documented = [row[0].strip("`") for row in rows]
    assert sorted(documented) == sorted(setting.name for setting in SETTINGS)
    assert len(documented) == len(set(documented))


def test_the_configuration_page_names_each_setting_in_every_framework() -> None:
    by_name = {setting.name: setting for setting in SETTINGS}
    for row in _documented_rows():
        setting = by_name[row[0].strip("`")]
        environment, flask, django, starlette = row[1:5]
        assert f"`{setting.env_var}`" in environment, row
        assert f"`{setting.flask_key}`" in flask, row
        assert f"`{setting.django_key}`" in django, row
        if setting.name in TASK_SETTINGS:  # read by the Celery integration
            assert f"`PagerDuty({setting.name}=)`" in starlette, row
        elif setting.name in KEYWORD_SETTINGS:
            assert f"`{setting.name}`" in starlette, row
        else:  # the webhook endpoints' setting
            assert "`WebhookReceiver(secrets=)`" in starlette, row
        assert "-" not in (flask, django, starlette), row


def test_flask_app_config_wins_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PAGERDUTY_TIMEOUT", "9")
    app = Flask(__name__)
    app.config["PAGERDUTY_TIMEOUT"] = 2
    assert load_settings(app.config).timeout == 2.0


def test_a_declared_setting_is_named_the_same_everywhere() -> None:
    for setting in SETTINGS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", setting.name)
        assert setting.env_var == "PAGERDUTY_" + setting.name.upper()
        assert re.fullmatch(r"[EW]\d{3}", setting.code)
