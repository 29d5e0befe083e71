"""``pd-integrations deploy`` against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pd_integrations.cli.main import main
from pd_integrations.emulator import Emulator

KEY = "deploytestroutingkey000000000001"


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def emulator(server: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name in ("PAGERDUTY_RELEASE", "GITHUB_SHA", "GIT_COMMIT", "SOURCE_VERSION", "APP_NAME"):
        monkeypatch.delenv(name, raising=False)
    server.reset()
    return server


def deploy(emulator: Emulator, *argv: str) -> int:
    return main(["deploy", *argv, "--routing-key", KEY, "--base-url", emulator.url])


def test_deploy_sends_a_change_event_with_the_release_and_links(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    status = deploy(
        emulator,
        "--release",
        "v2.3.0",
        "--link",
        "https://github.com/acme/shop/commit/abc123=Commit",
        "--link",
        "https://ci.example.com/runs/9",
        "--summary",
        "Deployed shop v2.3.0 to production",
        "--source",
        "ci",
    )
    assert status == 0, capsys.readouterr().err
    assert emulator.alerts() == []
    (event,) = emulator.events()
    assert event["type"] == "change"
    body = event["body"]
    assert body["payload"]["summary"] == "Deployed shop v2.3.0 to production"
    assert body["payload"]["source"] == "ci"
    assert body["payload"]["custom_details"] == {"release": "v2.3.0"}
    assert body["links"] == [
        {"href": "https://github.com/acme/shop/commit/abc123", "text": "Commit"},
        {"href": "https://ci.example.com/runs/9"},
    ]


def test_deploy_defaults_to_the_detected_release_and_a_summary(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_COMMIT", "0f1e2d3")
    assert deploy(emulator) == 0
    (event,) = emulator.events()
    assert event["body"]["payload"]["summary"] == "Deployed 0f1e2d3"
    assert event["body"]["payload"]["custom_details"] == {"release": "0f1e2d3"}


def test_deploy_without_any_release_is_a_usage_error(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pd_integrations.context.release import RELEASE_VARIABLES

    for name in RELEASE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert deploy(emulator) == 2
    err = capsys.readouterr().err
    assert err.startswith("pd-integrations: error: deploy needs a release")
    assert emulator.events() == []
