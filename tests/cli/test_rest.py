"""``pd-integrations incidents|oncall|webhook`` against the real emulator."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pd_integrations.emulator import Emulator
from tests.cli.test_main import Run, run

ROUTING_KEY = "c1irestroutingkey000000000000001"
API_KEY = "u+clirestapikeysecret000"
ALICE = "alice@example.com"
VECTOR = json.loads(
    (Path(__file__).parents[1] / "data" / "webhook-v3-signature-vector.json").read_text()
)
ENV_VARS = (
    "PAGERDUTY_API_KEY",
    "PAGERDUTY_DEFAULT_FROM_EMAIL",
    "PAGERDUTY_REST_BASE_URL",
    "PAGERDUTY_WEBHOOK_SECRET",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator(port=0, api_token=API_KEY) as emulator:
        yield emulator


@pytest.fixture
def emulator(server: Emulator) -> Emulator:
    server.reset()
    for n in range(3):
        body = {
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": f"disk-{n}",
            "payload": {
                "summary": f"Disk {n} full",
                "source": "db",
                "severity": "critical" if n else "warning",
            },
        }
        assert httpx.post(server.events_url, json=body, timeout=5).status_code == 202
    return server


def rest(emulator: Emulator, *argv: str, key: str = API_KEY) -> list[str]:
    return [*argv, "--base-url", emulator.rest_url, "--api-key", key, "--from", ALICE]


def ids(emulator: Emulator) -> list[str]:
    return [alert["id"] for alert in emulator.alerts()]


def assert_error_line(result: Run, status: int, *fragments: str) -> None:
    assert result.status == status, (result.out, result.err)
    assert result.err.startswith("pd-integrations: error: ")
    assert result.err.count("\n") == 1, result.err
    assert API_KEY not in result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err


# -- incidents --------------------------------------------------------------------------


def test_list_as_a_table(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(capsys, *rest(emulator, "incidents", "list"))
    assert result.status == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == ["ID", "NUMBER", "STATUS", "URGENCY", "CREATED", "SERVICE", "TITLE"]
    assert [row.split()[0] for row in rows] == ids(emulator)
    assert rows[0].split()[2:4] == ["triggered", "low"]
    assert rows[1].endswith("Disk 1 full")
    assert ROUTING_KEY not in result.out


def test_list_filters_and_json(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    first = ids(emulator)[0]
    emulator.acknowledge(first)
    result = run(capsys, *rest(emulator, "incidents", "list", "--status", "acknowledged", "--json"))
    assert result.status == 0
    assert [i["id"] for i in result.json()] == [first]
    limited = run(capsys, *rest(emulator, "incidents", "list", "--limit", "2", "--json"))
    assert len(limited.json()) == 2
    emulator.reset()
    empty = run(capsys, *rest(emulator, "incidents", "list"))
    assert (empty.status, empty.out) == (0, "No incidents.\n")


def test_show(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    first = ids(emulator)[0]
    emulator.add_note(first, "Checking the disk")
    result = run(capsys, *rest(emulator, "incidents", "show", first))
    assert result.status == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["ID:", first]
    assert "Title:         Disk 0 full" in lines
    assert "Assigned to:   Alice Example" in lines
    assert lines[-2] == "Notes (1):"
    assert lines[-1].endswith("Alice Example: Checking the disk")
    as_json = run(capsys, *rest(emulator, "incidents", "show", first, "--json")).json()
    assert as_json["id"] == first
    assert [n["content"] for n in as_json["notes"]] == ["Checking the disk"]


def test_ack_resolve_note(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    first, second, _ = ids(emulator)
    acked = run(capsys, *rest(emulator, "incidents", "ack", first))
    assert (acked.status, acked.out) == (0, f"{first} acknowledged\n")
    resolved = run(
        capsys, *rest(emulator, "incidents", "resolve", second, "--resolution", "Rotated logs")
    )
    assert (resolved.status, resolved.out) == (0, f"{second} resolved\n")
    assert emulator.alert(second)["resolution"] == "Rotated logs"
    noted = run(capsys, *rest(emulator, "incidents", "note", first, "Freed 20 GB", "--json"))
    assert noted.status == 0
    assert noted.json()["content"] == "Freed 20 GB"
    log = emulator.alert(first)["log"]
    assert (log[-1]["action"], log[-1]["via"], log[-1]["agent"]) == (
        "acknowledge",
        "rest_api",
        "PUSR001",
    )


def test_refusals_exit_1(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    first = ids(emulator)[0]
    emulator.resolve(first)
    again = run(capsys, *rest(emulator, "incidents", "ack", first))
    assert_error_line(again, 1, "HTTP 400", "Incident Already Resolved")
    missing = run(capsys, *rest(emulator, "incidents", "show", "A99999"))
    assert_error_line(missing, 1, "HTTP 404", "2100")
    as_json = run(capsys, *rest(emulator, "incidents", "show", "A99999", "--json"))
    assert as_json.status == 1
    assert as_json.json()["status_code"] == 404
    assert as_json.json()["code"] == 2100


def test_a_wrong_api_key_is_masked(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    wrong = "wrongkeywrongkeywrong123"
    result = run(capsys, *rest(emulator, "incidents", "list", key=wrong))
    assert_error_line(result, 1, "HTTP 401")
    assert wrong not in result.err
    assert wrong not in result.out


def test_the_key_is_masked_even_when_echoed(
    capsys: pytest.CaptureFixture[str], emulator: Emulator
) -> None:
    # argparse echoes a bad choice: the key given right before it must not show.
    result = run(capsys, *rest(emulator, "incidents", "list", "--status", API_KEY, key=API_KEY))
    assert_error_line(result, 2, "invalid choice")


def test_settings_from_the_environment(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGERDUTY_API_KEY", API_KEY)
    monkeypatch.setenv("PAGERDUTY_DEFAULT_FROM_EMAIL", "bob@example.com")
    monkeypatch.setenv("PAGERDUTY_REST_BASE_URL", emulator.rest_url)
    first = ids(emulator)[0]
    assert run(capsys, "incidents", "ack", first).status == 0
    assert emulator.alert(first)["log"][-1]["agent"] == "PUSR002"


def test_missing_settings_exit_2(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    no_key = run(capsys, "incidents", "list", "--base-url", emulator.rest_url)
    assert_error_line(no_key, 2, "PAGERDUTY_API_KEY")
    first = ids(emulator)[0]
    no_from = run(
        capsys, "incidents", "ack", first, "--base-url", emulator.rest_url, "--api-key", API_KEY
    )
    assert_error_line(no_from, 2, "From", "--from", "PAGERDUTY_DEFAULT_FROM_EMAIL")
    assert "from_email=" not in no_from.err  # the flag, not the Python argument
    assert emulator.alert(first)["status"] == "triggered"
    no_id = run(capsys, "incidents", "ack")
    assert_error_line(no_id, 2)
    bad_ca = run(capsys, *rest(emulator, "incidents", "list", "--ca-file", "/no/such.pem"))
    assert_error_line(bad_ca, 2, "--ca-file")


def test_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(
        capsys,
        "incidents",
        "list",
        "--base-url",
        "http://127.0.0.1:9",
        "--api-key",
        API_KEY,
        "--timeout",
        "1",
    )
    assert_error_line(result, 1)


# -- oncall ------------------------------------------------------------------------------


def test_oncall(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    result = run(capsys, *rest(emulator, "oncall", "PSCH001"))
    assert result.status == 0
    header, row = result.out.splitlines()
    assert header.split() == ["LEVEL", "USER", "USER", "ID", "SCHEDULE", "UNTIL"]
    assert row.split()[:4] == ["1", "Alice", "Example", "PUSR001"]
    as_json = run(capsys, *rest(emulator, "oncall", "PSCH002", "--json")).json()
    assert [entry["user"]["id"] for entry in as_json] == ["PUSR002"]
    nobody = run(capsys, *rest(emulator, "oncall", "PNOSUCH"))
    assert_error_line(nobody, 1, "nobody is on call on schedule PNOSUCH")


# -- webhook verify ------------------------------------------------------------------------


def verify(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    body: bytes,
    *argv: str,
) -> Run:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))
    return run(capsys, "webhook", "verify", *argv)


def case(name: str) -> dict[str, Any]:
    (found,) = [c for c in VECTOR["cases"] if c["name"] == name]
    return dict(found)


def test_verify_the_vector(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = VECTOR["body"].encode()
    secret = VECTOR["secret"]
    valid = verify(
        capsys, monkeypatch, body, "--secret", secret, "--signature", case("valid")["header"]
    )
    assert (valid.status, valid.out) == (0, "valid: the signature matches the body\n")
    mismatch = verify(
        capsys, monkeypatch, body, "--secret", secret, "--signature", case("mismatch")["header"]
    )
    assert_error_line(mismatch, 1, "invalid signature")
    assert secret not in mismatch.err
    # One changed byte, as a re-serialised body would have: invalid.
    changed = verify(
        capsys,
        monkeypatch,
        body.replace(b'":"', b'": "', 1),
        "--secret",
        secret,
        "--signature",
        case("valid")["header"],
    )
    assert changed.status == 1


def test_verify_with_rotation_a_file_and_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_bytes(VECTOR["body"].encode())
    header = case("valid")["header"]
    rotated = run(
        capsys,
        "webhook",
        "verify",
        "--secret",
        "an-old-secret",
        "--secret",
        VECTOR["secret"],
        "--signature",
        header,
        "--body-file",
        str(body_file),
    )
    assert rotated.status == 0
    monkeypatch.setenv("PAGERDUTY_WEBHOOK_SECRET", VECTOR["secret"])
    from_env = run(
        capsys, "webhook", "verify", "--signature", header, "--body-file", str(body_file)
    )
    assert from_env.status == 0


def test_verify_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_secret = verify(capsys, monkeypatch, b"{}", "--signature", "v1=00")
    assert_error_line(no_secret, 2, "--secret")
    no_signature = verify(capsys, monkeypatch, b"{}", "--secret", "a-test-secret")
    assert_error_line(no_signature, 2, "--signature")
    no_file = run(
        capsys,
        "webhook",
        "verify",
        "--secret",
        "a-test-secret",
        "--signature",
        "v1=00",
        "--body-file",
        str(tmp_path / "missing.json"),
    )
    assert_error_line(no_file, 2, "cannot read --body-file")
    empty = verify(capsys, monkeypatch, b"", "--secret", "a-test-secret", "--signature", "v1=00")
    assert_error_line(empty, 1, "the body is empty")


def test_the_emulator_needs_a_secret_for_webhooks(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "emulator", "--port", "0", "--webhook-url", "http://127.0.0.1:9/hook")
    assert_error_line(result, 2, "--webhook-secret")
