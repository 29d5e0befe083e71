from __future__ import annotations

import copy
import json
import string
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pd_integrations.encoding import JSONValue, to_jsonable
from pd_integrations.scrub import DEFAULT_SCRUBBER, DEFAULT_SENSITIVE_KEYS, FILTERED, Scrubber

# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "Authorization",
        "Proxy-Authorization",
        "HTTP_AUTHORIZATION",
        "COOKIE",
        "HTTP_COOKIE",
        "Set-Cookie",
        "X-Api-Key",
        "apiKey",
        "APIKey",
        "api-key",
        "api key",
        "user_password",
        "userPassword",
        "user[password]",
        "passwd",
        "pwd",
        "new_pwd",
        "client_secret",
        "access_token",
        "accessToken",
        "sessionid",
        "X-CSRFToken",
        "csrfmiddlewaretoken",
        "xsrf-token",
        "private_key",
        "aws_credentials",
        "routing_key",
        "integrationKey",
        "X-Hub-Signature-256",
        "user ssn",
        "userSSN",
        "ssn_last4",
        "credit-card",
        "creditCardNumber",
        "card_number",
        "cvv",
        "passphrase",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert DEFAULT_SCRUBBER.is_sensitive(key)
    assert DEFAULT_SCRUBBER.scrub({key: "value"}) == {key: FILTERED}


@pytest.mark.parametrize(
    "key",
    [
        "user",
        "passenger",  # there is no "pass" key, on purpose
        "class_name",
        "classname",  # contains "ssn", which matches whole words only
        "business",
        "author",
        "path",
        "status",
        "OLDPWD",
        "keyboard",
        "route",
        "",
    ],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not DEFAULT_SCRUBBER.is_sensitive(key)
    assert DEFAULT_SCRUBBER.scrub({key: "value"}) == {key: "value"}


def test_default_keys_are_normalised_and_lowercase() -> None:
    assert {"authorization", "cookie", "password", "token", "routing_key"} <= (
        DEFAULT_SENSITIVE_KEYS
    )
    assert all(key == key.lower() and "-" not in key for key in DEFAULT_SENSITIVE_KEYS)
    assert DEFAULT_SCRUBBER.keys == DEFAULT_SENSITIVE_KEYS


def test_is_sensitive_is_stable_and_never_raises() -> None:
    scrubber = Scrubber()
    assert scrubber.is_sensitive("Password") is scrubber.is_sensitive("Password") is True
    assert scrubber.is_sensitive(3) is False  # type: ignore[arg-type]
    assert scrubber.is_sensitive(["unhashable"]) is False  # type: ignore[arg-type]


# -- structures ------------------------------------------------------------------------


def test_nested_structures_and_header_pairs() -> None:
    data: JSONValue = {
        "request": {
            "headers": [["Authorization", "Bearer abc"], ["Accept", "text/html"]],
            "cookies": {"sessionid": "x"},
            "body": [{"password": "p", "name": "ann"}],
        }
    }
    original = copy.deepcopy(data)
    assert DEFAULT_SCRUBBER.scrub(data) == {
        "request": {
            "headers": [["Authorization", FILTERED], ["Accept", "text/html"]],
            "cookies": FILTERED,
            "body": [{"password": FILTERED, "name": "ann"}],
        }
    }
    assert data == original  # never mutated


def test_header_pairs_in_every_case_and_shape() -> None:
    headers: JSONValue = [
        ["X-API-KEY", "k-123"],
        ["cookie", "a=b"],
        ["Content-Type", "application/json"],
        ["x-request-id", "r-1"],
    ]
    assert DEFAULT_SCRUBBER.scrub(headers) == [
        ["X-API-KEY", FILTERED],
        ["cookie", FILTERED],
        ["Content-Type", "application/json"],
        ["x-request-id", "r-1"],
    ]
    # Records as HAR files and some frameworks write them.
    records: JSONValue = [
        {"name": "Authorization", "value": "Basic dXNlcjpwYXNz"},
        {"name": "Accept", "value": "*/*"},
        {"key": "api_key", "value": "k-1", "enabled": True},
    ]
    assert DEFAULT_SCRUBBER.scrub(records) == [
        {"name": "Authorization", "value": FILTERED},
        {"name": "Accept", "value": "*/*"},
        {"key": "api_key", "value": FILTERED, "enabled": True},
    ]


def test_structures_from_the_encoder() -> None:
    @dataclass
    class Login:
        user: str
        password: str
        url: str
        headers: tuple[tuple[str, str], ...] = field(default=())

    encoded = to_jsonable(
        {
            "login": Login(
                "ann",
                "hunter2",
                "https://ann:hunter2@example.com/x?token=t0k",
                (("Authorization", "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"),),
            )
        }
    )
    scrubbed = DEFAULT_SCRUBBER.scrub(encoded)
    assert scrubbed == {
        "login": {
            "user": "ann",
            "password": FILTERED,
            "url": f"https://{FILTERED}@example.com/x?token={FILTERED}",
            "headers": [["Authorization", FILTERED]],
        }
    }
    assert "hunter2" not in json.dumps(scrubbed)


def test_presence_is_kept_but_never_the_value() -> None:
    data: JSONValue = {
        "password": None,
        "has_token": True,
        "token": "",
        "session": {"user_id": 5, "cart": [1, 2]},
        "api_key": 12345,
        "pair": ["Authorization", None],
    }
    assert DEFAULT_SCRUBBER.scrub(data) == {
        "password": None,
        "has_token": True,
        "token": FILTERED,
        "session": FILTERED,
        "api_key": FILTERED,
        "pair": ["Authorization", None],
    }


def test_scalars_pass_through() -> None:
    assert DEFAULT_SCRUBBER.scrub([1, 2.5, None, True, "text"]) == [1, 2.5, None, True, "text"]
    assert DEFAULT_SCRUBBER.scrub(7) == 7
    assert DEFAULT_SCRUBBER.scrub(None) is None


def test_a_new_structure_is_returned() -> None:
    inner: list[JSONValue] = [1]
    data: dict[str, JSONValue] = {"a": inner}
    result = DEFAULT_SCRUBBER.scrub(data)
    assert result == data
    assert result is not data
    assert isinstance(result, dict)
    assert result["a"] is not inner


def test_keys_holding_credentials_are_scrubbed_too() -> None:
    data: JSONValue = {"https://ann:pw@db.example.com": "down"}
    assert DEFAULT_SCRUBBER.scrub(data) == {f"https://{FILTERED}@db.example.com": "down"}


def test_cycles_and_depth_never_raise() -> None:
    loop: list[Any] = ["a"]
    loop.append(loop)
    assert DEFAULT_SCRUBBER.scrub(loop) == ["a", FILTERED]
    deep: list[Any] = []
    node = deep
    for _ in range(5000):
        child: list[Any] = []
        node.append(child)
        node = child
    result = DEFAULT_SCRUBBER.scrub(deep)
    assert FILTERED in json.dumps(result)


def test_values_outside_json_are_tolerated() -> None:
    odd: Any = {1: "x", ("t",): "y", "items": ("Authorization", "secret-value"), "o": object}
    result: Any = DEFAULT_SCRUBBER.scrub(odd)
    assert isinstance(result, dict)
    assert result[1] == "x"
    assert result[("t",)] == "y"
    assert result["items"] == ["Authorization", FILTERED]
    assert result["o"] is object


# -- strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth failed for Bearer eyJhbGci.x.y", f"auth failed for Bearer {FILTERED}"),
        ("bearer abc", f"bearer {FILTERED}"),
        ("Token token=abc123 rejected", f"Token {FILTERED} rejected"),
        ('Token token="abc123", realm="api"', f"Token {FILTERED}"),
        ("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", f"Token {FILTERED}"),
        ("Basic dXNlcjpwYXNz", f"Basic {FILTERED}"),
        ("BASIC dXNlcjpwYXNz==", f"BASIC {FILTERED}"),
        ('Digest username="Mufasa", response="6629fae4"', f"Digest {FILTERED}"),
        ("postgres://app:s3cret@db:5432/app", f"postgres://{FILTERED}@db:5432/app"),
        ("redis://:s3cret@cache:6379/0", f"redis://{FILTERED}@cache:6379/0"),
        ("postgres://app:p@ss@db/app", f"postgres://{FILTERED}@db/app"),
        ("https://ghp_abc123@github.com/o/r.git", f"https://{FILTERED}@github.com/o/r.git"),
        ("GET /cb?code=1&access_token=abc&x=2", f"GET /cb?code=1&access_token={FILTERED}&x=2"),
        ("https://h/?next=/a?token=abc#top", f"https://h/?next=/a?token={FILTERED}#top"),
        ("/search?q=1;session_id=s1", f"/search?q=1;session_id={FILTERED}"),
        ("user[password]=x&user[name]=bob", f"user[password]={FILTERED}&user[name]=bob"),
        ("login user=ann password=hunter2 ok", f"login user=ann password={FILTERED} ok"),
        ("connect(host='db', password='hunter2')", f"connect(host='db', password='{FILTERED}')"),
        ("password='cut off", f"password={FILTERED} off"),
        ("WHERE password = 'x' AND id = 3", f"WHERE password = '{FILTERED}' AND id = 3"),
        ('{"user": "ann", "password": "hunter2"}', f'{{"user": "ann", "password": "{FILTERED}"}}'),
        ('{"pin":1,"token":42}', f'{{"pin":1,"token":"{FILTERED}"}}'),
        ('{"session": {"id": 7}, "n": 1}', f'{{"session": "{FILTERED}", "n": 1}}'),
        (
            "[parameters: {'token': 'abc', 'id': 5}]",
            f"[parameters: {{'token': '{FILTERED}', 'id': 5}}]",
        ),
        ("Authorization: Bearer abc\nAccept: */*", f"Authorization: {FILTERED}\nAccept: */*"),
        ("Cookie: sessionid=a; theme=dark\r\nHost: h", f"Cookie: {FILTERED}\r\nHost: h"),
        ("X-Api-Key: k-123", f"X-Api-Key: {FILTERED}"),
        ("invalid API token: abc123 for ann", f"invalid API token: {FILTERED} for ann"),
        ("sent Cookie: a=1; b=2, then failed", f"sent Cookie: {FILTERED}, then failed"),
        ("  password: hunter2 and more", f"  password: {FILTERED}"),
        ("plain message, nothing to hide", "plain message, nothing to hide"),
        ("", ""),
    ],
)
def test_credentials_inside_strings(text: str, expected: str) -> None:
    assert DEFAULT_SCRUBBER.scrub(text) == expected
    assert DEFAULT_SCRUBBER.scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Ordinary prose after an auth scheme's name is not a credential.
        "Token expired",
        "Basic validation failed",
        "token is invalid",
        # Paths, times and URLs that merely look like pairs.
        "File /app/sessions.py:42 in get",
        "requests.sessions:request:589",
        "at 12:30 the ratio was 3:4",
        "https://medium.com/@ann and http://localhost:4873/@babel/core",
        "mailto:ann@example.com",
        "status=500 route=/users/{id}",
        "ssh://git.example.com/repo",
        "POST /auth/token: 502 Bad Gateway",
    ],
)
def test_text_without_credentials_is_left_alone(text: str) -> None:
    assert DEFAULT_SCRUBBER.scrub(text) == text


def test_json_inside_a_string_stays_json() -> None:
    body = json.dumps({"user": "ann", "password": "hunter2", "card_number": 4111, "ok": None})
    scrubbed = DEFAULT_SCRUBBER.scrub(body)
    assert isinstance(scrubbed, str)
    assert json.loads(scrubbed) == {
        "user": "ann",
        "password": FILTERED,
        "card_number": FILTERED,
        "ok": None,
    }


# -- configuration ---------------------------------------------------------------------


def test_extra_keys_add_to_the_defaults() -> None:
    extended = Scrubber(extra_keys=["email", "X-Tenant-Id", "Straße"])
    assert extended.scrub(
        {"email": "a@b.c", "password": "x", "xTenantID": "t", "STRASSE": "s", "id": 1}
    ) == {
        "email": FILTERED,
        "password": FILTERED,
        "xTenantID": FILTERED,
        "STRASSE": FILTERED,
        "id": 1,
    }
    # They apply inside strings as well.
    assert extended.scrub("/u?email=a@b.c") == f"/u?email={FILTERED}"
    assert DEFAULT_SCRUBBER.scrub("/u?email=a@b.c") == "/u?email=a@b.c"


def test_keys_replace_the_defaults() -> None:
    only = Scrubber(keys=["email"])
    assert only.keys == frozenset({"email"})
    assert only.scrub({"email": "a@b.c", "password": "x"}) == {"email": FILTERED, "password": "x"}
    # Credentials recognisable by their shape are still redacted.
    assert only.scrub("Bearer abc") == f"Bearer {FILTERED}"
    nothing = Scrubber(keys=[])
    assert nothing.scrub({"password": "x", "": "y"}) == {"password": "x", "": "y"}


def test_short_extra_keys_match_whole_words() -> None:
    scrubber = Scrubber(keys=["ip"])
    assert scrubber.is_sensitive("client_ip")
    assert scrubber.is_sensitive("IP-Address")
    assert scrubber.is_sensitive("remoteIP")
    assert not scrubber.is_sensitive("zip")
    assert not scrubber.is_sensitive("shipping")


def test_switching_off_returns_the_value_unchanged() -> None:
    off = Scrubber(enabled=False)
    data: JSONValue = {"password": "x", "url": "https://a:b@h"}
    assert off.scrub(data) is data
    assert off.scrub_text("Bearer abc") == "Bearer abc"
    assert off.is_sensitive("password")  # the judgement is still available


def test_repr_names_the_keys_not_any_data() -> None:
    assert repr(Scrubber(keys=["b", "A"], enabled=False)) == (
        "Scrubber(keys=['a', 'b'], enabled=False)"
    )


# -- properties ------------------------------------------------------------------------

json_values: st.SearchStrategy[JSONValue] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)
# Looks like a real credential: long, and with a digit, so never mistaken for a word.
secrets = st.text(string.ascii_letters + string.digits, min_size=12, max_size=40).map(
    lambda text: f"S3{text}"
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_scrub_never_raises_or_mutates(value: JSONValue) -> None:
    before = json.dumps(value, sort_keys=True)
    result = DEFAULT_SCRUBBER.scrub(value)
    assert json.dumps(value, sort_keys=True) == before
    json.dumps(result)  # still JSON-compatible


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_scrub_text_never_raises(text: str) -> None:
    assert isinstance(DEFAULT_SCRUBBER.scrub_text(text), str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=json_values,
    secret=secrets,
    key=st.sampled_from(["password", "X-Api-Key", "sessionId", "client_secret", "Cookie"]),
    path=st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=5), max_size=3),
)
def test_a_secret_under_a_sensitive_key_never_survives(
    value: JSONValue, secret: str, key: str, path: list[str]
) -> None:
    assume(secret not in json.dumps(value))
    planted: JSONValue = {key: secret, "other": value}
    for name in reversed(path):
        planted = {name: planted}
    assert secret not in json.dumps(DEFAULT_SCRUBBER.scrub(planted))


@settings(max_examples=200, deadline=None)
@given(
    secret=secrets,
    before=st.text(max_size=20),
    after=st.text(max_size=20),
    template=st.sampled_from(
        [
            "Authorization: Bearer {}",
            "Basic {}",
            "https://user:{}@host/path",
            "/cb?access_token={}&x=1",
            '{{"password": "{}"}}',
            "password={}",
            "{{'api_key': '{}'}}",
        ]
    ),
)
def test_a_credential_in_text_never_survives(
    secret: str, before: str, after: str, template: str
) -> None:
    text = f"{before} {template.format(secret)} {after}"
    assert secret not in DEFAULT_SCRUBBER.scrub_text(text)


# -- secrets known by their shape ------------------------------------------------------

# Built at run time, so that no secret scanner takes this file for a leak.
SHAPED = {
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws_session": "ASIA" + "Y34FZKBOKMUTVV7A",
    "jwt": "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".SflKxwRJSMeKKF2QT4fwpM",
    "stripe": "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "stripe_test": "sk_" + "test_" + "51H8abcdefGHIJKL0123",
    "stripe_restricted": "rk_" + "live_" + "51H8abcdefGHIJKL0123",
    "github": "gh" + "p_" + "A1b2C3d4" * 4 + "E5f6",
    "github_oauth": "gh" + "o_" + "Z9y8X7w6" * 4 + "V5u4",
    "github_app": "gh" + "s_" + "Q1w2E3r4" * 4 + "T5y6",
    "github_pat": "github" + "_pat_" + "11ABCDEFG0" + "_abcdefghijKLMNOPQRSTuvwxyz0123456789",
    "slack": "xo" + "xb-" + "123456789012-1234567890123-AbCdEfGhIjKl",
    "slack_user": "xo" + "xp-" + "123456789012-abcdefABCDEF",
}
SLACK_HOOK = "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq98xfZ1lJ0\nQ2xWb3Vsa2V5\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize("secret", list(SHAPED.values()), ids=list(SHAPED))
@pytest.mark.parametrize(
    "template",
    [
        "request failed with {} today",
        "{}",
        "config={{'id': 1, 'value': '{}'}}",
        '{{"data": "{}"}}',
        "url=https://api.example.com/v1?k={}&page=2",
    ],
)
def test_secrets_known_by_their_shape_are_redacted_in_any_text(secret: str, template: str) -> None:
    text = template.format(secret)
    scrubbed = DEFAULT_SCRUBBER.scrub_text(text)
    assert secret not in scrubbed
    assert scrubbed == template.format(FILTERED)


@pytest.mark.parametrize("secret", list(SHAPED.values()), ids=list(SHAPED))
def test_secrets_known_by_their_shape_are_redacted_under_any_key_and_as_keys(secret: str) -> None:
    data: JSONValue = {"note": f"saw {secret}", secret: "v", "list": [secret]}
    assert DEFAULT_SCRUBBER.scrub(data) == {
        "note": f"saw {FILTERED}",
        FILTERED: "v",
        "list": [FILTERED],
    }
    # Even a scrubber told about no key names at all knows them by their shape.
    assert secret not in json.dumps(Scrubber(keys=[]).scrub(data))


def test_slack_webhooks_keep_their_host_and_private_keys_their_armour() -> None:
    assert DEFAULT_SCRUBBER.scrub_text(f"posting to {SLACK_HOOK} failed") == (
        f"posting to https://hooks.slack.com/services/{FILTERED} failed"
    )
    assert DEFAULT_SCRUBBER.scrub_text(f"key:\n{PEM}\nloaded") == (
        f"key:\n-----BEGIN RSA PRIVATE KEY-----{FILTERED}-----END RSA PRIVATE KEY-----\nloaded"
    )
    escaped = json.dumps({"pem": PEM, "name": "deploy"})  # newlines escaped, as in logs
    assert "MIIEow" not in DEFAULT_SCRUBBER.scrub_text(escaped)
    for kind in ("", "EC ", "OPENSSH ", "ENCRYPTED "):
        block = f"-----BEGIN {kind}PRIVATE KEY-----\nMIIabc\n-----END {kind}PRIVATE KEY-----"
        assert "MIIabc" not in DEFAULT_SCRUBBER.scrub_text(block)
    # A block that never ends (cut, or pasted in half) is redacted to the end.
    assert DEFAULT_SCRUBBER.scrub_text(PEM[:60] + " and more") == (
        f"-----BEGIN RSA PRIVATE KEY-----{FILTERED}"
    )


def test_bearer_tokens_are_redacted_in_text_and_in_keys() -> None:
    token = "abc.DEF-123_xyz"
    assert DEFAULT_SCRUBBER.scrub_text(f"[500] upstream said Bearer {token} expired") == (
        f"[500] upstream said Bearer {FILTERED} expired"
    )
    assert DEFAULT_SCRUBBER.scrub({f"Bearer {token}": 1}) == {f"Bearer {FILTERED}": 1}


@pytest.mark.parametrize(
    "text",
    [
        "ASIA region is slow",
        "AKIA keys start with AKIA",
        "AKIAIOSFODNN7EXAMPLEXX is too long for an access key id",
        "sk_live_ is the prefix of a live key",
        "ghp_ and gho_ tokens, github_pat_ too",
        "xoxb- tokens belong to bots",
        "eyJ starts every JWT",
        "the author signed off the design, auth is fine",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
        "https://hooks.slack.com/ is where webhooks go",
        "task_live_results and desk_test_runner are not keys",
    ],
)
def test_ordinary_text_is_not_mistaken_for_a_shaped_secret(text: str) -> None:
    assert DEFAULT_SCRUBBER.scrub_text(text) == text


@pytest.mark.parametrize(
    "key", ["auth", "X-Auth", "basic_auth", "authToken", "sig", "Signature", "jwt", "private_key"]
)
def test_new_sensitive_key_names(key: str) -> None:
    assert DEFAULT_SCRUBBER.is_sensitive(key)
    assert DEFAULT_SCRUBBER.scrub({key: "value"}) == {key: FILTERED}
    assert DEFAULT_SCRUBBER.scrub_text(f"GET /x?{key}=value") == f"GET /x?{key}={FILTERED}"


@pytest.mark.parametrize("key", ["author", "authority", "signal", "design", "assignee", "jwtish"])
def test_short_names_inside_ordinary_words_are_not_sensitive(key: str) -> None:
    assert not DEFAULT_SCRUBBER.is_sensitive(key)


# -- text that was cut ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A URL's userinfo whose "@" was cut off.
        ("cannot reach https://app:s3cr…", f"cannot reach https://{FILTERED}…"),
        ("cannot reach https://app:s3cr…[truncated 40 chars]", None),
        ("redis://:s3cr…", f"redis://{FILTERED}…"),
        ("dsn=postgres://app:pa$$w…", f"dsn=postgres://{FILTERED}…"),
        # Mid-text, as in a summary built around a cut exception message.
        (
            "[500] OperationalError: no route to postgres://app:s3cr… - POST /orders",
            f"[500] OperationalError: no route to postgres://{FILTERED}… - POST /orders",
        ),
        ("got " + SHAPED["stripe"][:14] + "… - GET /pay", f"got {FILTERED}… - GET /pay"),
        # Not a port, so a password with its "@" and host lost.
        ("dsn postgres://app:hunter2", f"dsn postgres://{FILTERED}"),
        # Shapes left open by a cut.
        ("key " + SHAPED["aws"][:10] + "…", f"key {FILTERED}…"),
        ("auth=x " + SHAPED["jwt"][:30] + "…", f"auth={FILTERED} {FILTERED}…"),
        ("with " + SHAPED["github"][:12] + "…[truncated 28 chars]", None),
        ("x " + SHAPED["stripe"][:12] + "…", f"x {FILTERED}…"),
        ("x " + SHAPED["slack"][:8] + "…", f"x {FILTERED}…"),
    ],
)
def test_a_secret_left_open_by_a_cut_is_redacted(text: str, expected: str | None) -> None:
    scrubbed = DEFAULT_SCRUBBER.scrub_text(text)
    if expected is not None:
        assert scrubbed == expected
    else:
        assert FILTERED in scrubbed
        assert scrubbed.endswith("]")  # the cut marker is kept


@pytest.mark.parametrize(
    "text",
    [
        "connect to http://db:5432",
        "connect to http://db:5432/app failed",
        "http://[::1]:8080",
        "(see https://example.com:8080)",
        "listening on http://0.0.0.0:8000.",
        "Loading…",
        "see https://example.com/docs…",
        "ASIAN markets…",
    ],
)
def test_text_that_only_looks_cut_is_left_alone(text: str) -> None:
    assert DEFAULT_SCRUBBER.scrub_text(text) == text


# -- scrubbing before cutting ---------------------------------------------------------


# (text holding a secret, the secret part of it): fixed prefixes such as AKIA may show.
STRADDLING = [
    *((token, token[8:]) for token in SHAPED.values()),
    ("postgres://app:S3cretPassw0rd@db/app", "S3cretPassw0rd"),
    ("password=S3cretPassw0rd", "S3cretPassw0rd"),
    ("Authorization: Bearer S3cretPassw0rd", "S3cretPassw0rd"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    planted=st.sampled_from(STRADDLING),
    before=st.text(string.ascii_letters + " ", max_size=30),
    into=st.integers(min_value=0, max_value=80),
    as_key=st.booleans(),
)
def test_a_secret_straddling_the_cut_never_survives_in_part(
    planted: tuple[str, str], before: str, into: int, as_key: bool
) -> None:
    text, secret = planted
    message = f"{before} {text} and the rest of the message"
    cut = len(before) + 1 + into  # somewhere in, or just after, the secret
    value = {message: 1} if as_key else {"message": message}
    encoded = json.dumps(DEFAULT_SCRUBBER.to_jsonable(value, max_string=cut))
    for start in range(len(secret) - 5):
        assert secret[start : start + 6] not in encoded


def test_to_jsonable_scrubs_like_scrub_and_honours_enabled() -> None:
    data = {
        "headers": {"Authorization": "Bearer abc"},
        "user": "ann",
        "dsn": "postgres://app:pw@db/app",
        "ok": True,
    }
    assert DEFAULT_SCRUBBER.to_jsonable(data) == DEFAULT_SCRUBBER.scrub(to_jsonable(data))
    assert Scrubber(enabled=False).to_jsonable(data) == to_jsonable(data)
    assert DEFAULT_SCRUBBER.to_jsonable(
        {"password": "x" * 100, "short": "y" * 100}, max_string=10
    ) == {"password": FILTERED, "short": "y" * 10 + "…[truncated 90 chars]"}


@settings(max_examples=200, deadline=None)
@given(
    secret=st.sampled_from([*SHAPED.values(), SLACK_HOOK, PEM]),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_a_shaped_secret_in_any_text_never_survives(secret: str, before: str, after: str) -> None:
    scrubbed = DEFAULT_SCRUBBER.scrub_text(f"{before} {secret} {after}")
    needle = "Q2xWb3Vsa2V5" if secret == PEM else secret[-16:]
    assert needle not in scrubbed


def test_a_repeated_text_is_redacted_every_time_and_per_scrubber() -> None:
    # Short texts are remembered once checked: the second answer must be the same one,
    # and a scrubber with other keys must not reuse the first one's answers.
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    default = Scrubber()
    first = default.scrub_text(f"token {token}")
    assert token not in first
    assert default.scrub_text(f"token {token}") == first
    assert default.scrub_text("session=abc123") != "session=abc123"
    assert Scrubber(keys=["password"]).scrub_text("session=abc123") == "session=abc123"
    assert Scrubber(enabled=False).scrub_text(f"token {token}") == f"token {token}"


# -- to_jsonable: the key rules judged in the same walk as the encoding --------------------


def judged_after_encoding(scrubber: Scrubber, value: JSONValue, depth: int = 0) -> JSONValue:
    """The key rules as a second walk over an already encoded value, as they once ran."""
    if not isinstance(value, dict | list):
        return value
    if depth >= 64:
        return FILTERED

    def kept(item: JSONValue) -> bool:
        return item is None or isinstance(item, bool)

    if isinstance(value, list):
        first = value[0] if len(value) == 2 else None
        if isinstance(first, str) and scrubber.is_sensitive(first) and not kept(value[1]):
            return [first, FILTERED]
        return [judged_after_encoding(scrubber, item, depth + 1) for item in value]
    names = [value.get(field) for field in ("name", "key", "header", "field")]
    named = "value" in value and any(
        isinstance(name, str) and scrubber.is_sensitive(name) for name in names
    )
    return {
        key: FILTERED
        if (scrubber.is_sensitive(key) or (named and key == "value")) and not kept(item)
        else judged_after_encoding(scrubber, item, depth + 1)
        for key, item in value.items()
    }


def encoded_then_judged(scrubber: Scrubber, value: object, **bounds: int) -> JSONValue:
    return judged_after_encoding(scrubber, to_jsonable(value, redact=scrubber.scrub_text, **bounds))


class Flag(Enum):
    UNSET = None
    ON = True
    SECRET = "S3cretFlagValue99"


@dataclass(frozen=True)
class Credentials:
    user: object
    password: object


WORDS = [
    "password",
    "Authorization",
    "api_key",
    "name",
    "value",
    "key",
    "header",
    "field",
    "message",
    "note",
    "user",
    "token=abc",
    "token=def",
    "https://u:pw@host/x",
    "Bearer abcdef123456",
    "…",
    "",
    "x" * 30,
    "token=" + "z" * 250,
    "password=" + "s" * 110,
]
# Shared by every example, so answers remembered under one bound meet another.
SCRUBBERS = [DEFAULT_SCRUBBER, Scrubber(extra_keys=["field", "name"]), Scrubber(keys=["message"])]
object_keys = st.sampled_from(WORDS) | st.text(max_size=6) | st.integers(-2, 2) | st.none()
object_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(WORDS)
    | st.text(max_size=8)
    | st.binary(max_size=6)
    | st.sampled_from(Flag)
    | st.sampled_from(WORDS).map(ValueError)
    | st.frozensets(st.sampled_from(WORDS), max_size=3)
)
objects: st.SearchStrategy[object] = st.recursive(
    object_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(st.sampled_from(WORDS), inner)
        | st.dictionaries(object_keys, inner, max_size=5)
        | st.fixed_dictionaries({"name": st.sampled_from(WORDS), "value": inner})
        | st.builds(Credentials, inner, inner)
    ),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=objects,
    scrubber=st.sampled_from(SCRUBBERS),
    max_string=st.sampled_from([3, 8, 20, 256, 8192]),
    max_items=st.sampled_from([1, 2, 3, 1000]),
    max_depth=st.sampled_from([1, 2, 3, 16]),
)
def test_to_jsonable_judges_keys_as_a_second_walk_would(
    value: object, scrubber: Scrubber, max_string: int, max_items: int, max_depth: int
) -> None:
    bounds = {"max_string": max_string, "max_items": max_items, "max_depth": max_depth}
    assert scrubber.to_jsonable(value, **bounds) == encoded_then_judged(scrubber, value, **bounds)


def test_a_secret_named_key_inside_a_list_inside_a_dict_is_filtered() -> None:
    value = {
        "orders": [
            {"id": 1, "card_number": "4111111111111111", "lines": [{"password": "hunter2"}]},
            ("Authorization", "Basic dXNlcjpwYXNz"),
        ]
    }
    assert DEFAULT_SCRUBBER.to_jsonable(value) == {
        "orders": [
            {"id": 1, "card_number": FILTERED, "lines": [{"password": FILTERED}]},
            ["Authorization", FILTERED],
        ]
    }


def test_keys_that_collide_once_scrubbed_are_each_judged() -> None:
    value = {
        "token=abc": "one",
        "token=def": "two",
        "dsn=https://u:pw1@h": 1,
        "dsn=https://u:pw2@h": 2,
    }
    scrubber = Scrubber()
    expected = {
        f"token={FILTERED}": FILTERED,
        f"'token={FILTERED}'": FILTERED,
        f"dsn=https://{FILTERED}@h": 1,
        f"'dsn=https://{FILTERED}@h'": 2,
    }
    assert scrubber.to_jsonable(value) == expected
    assert scrubber.to_jsonable(value) == expected  # the names now come from memory
    assert expected == encoded_then_judged(scrubber, value)
    # Each key met alone first: both names are remembered, and still collide.
    first, second = "dsn=https://u:pw1@h", "dsn=https://u:pw2@h"
    alone = Scrubber()
    assert alone.to_jsonable({first: 1}) == {f"dsn=https://{FILTERED}@h": 1}
    assert alone.to_jsonable({second: 2}) == {f"dsn=https://{FILTERED}@h": 2}
    assert alone.to_jsonable({first: 1, second: 2}) == {
        f"dsn=https://{FILTERED}@h": 1,
        f"'dsn=https://{FILTERED}@h'": 2,
    }
    assert alone.to_jsonable({second: 2}) == {f"dsn=https://{FILTERED}@h": 2}


def test_a_name_value_record_is_judged_whatever_its_order_and_filtered_names() -> None:
    assert DEFAULT_SCRUBBER.to_jsonable({"value": "v1", "name": "Authorization"}) == {
        "value": FILTERED,
        "name": "Authorization",
    }
    # The name field itself is sensitive here: its own value is filtered, and it still
    # names the record's value as a secret.
    scrubber = Scrubber(extra_keys=["field"])
    assert scrubber.to_jsonable({"field": "password", "value": "v2", "other": "v3"}) == {
        "field": FILTERED,
        "value": FILTERED,
        "other": "v3",
    }


def test_only_what_encodes_to_none_or_a_boolean_survives_a_sensitive_key() -> None:
    value = {
        "password": Flag.UNSET,
        "token": Flag.ON,
        "secret": Flag.SECRET,
        "api_key": b"raw-bytes",
        "session": Credentials("ann", "hunter2"),
        "cookie": ValueError("a=b"),
    }
    encoded = DEFAULT_SCRUBBER.to_jsonable(value)
    assert encoded == {
        "password": None,
        "token": True,
        "secret": FILTERED,
        "api_key": FILTERED,
        "session": FILTERED,
        "cookie": FILTERED,
    }
    assert encoded == encoded_then_judged(DEFAULT_SCRUBBER, value)


def test_dataclasses_and_exceptions_are_judged_by_their_field_names() -> None:
    scrubber = Scrubber(keys=["password", "message"])
    value = [Credentials("ann", "hunter2"), ValueError("the message")]
    assert scrubber.to_jsonable(value) == [
        {"user": "ann", "password": FILTERED},
        {"type": "ValueError", "message": FILTERED},
    ]


def test_containers_nested_past_the_scrubbers_depth_are_filtered() -> None:
    deep: dict[str, Any] = {"leaf": "x", "error": ValueError("e")}
    for level in range(70):
        deep = {f"level{level}": deep}
    encoded = DEFAULT_SCRUBBER.to_jsonable(deep, max_depth=100)
    assert encoded == encoded_then_judged(DEFAULT_SCRUBBER, deep, max_depth=100)
    assert FILTERED in json.dumps(encoded)
    loop: list[Any] = ["a"]
    loop.append(loop)
    assert DEFAULT_SCRUBBER.to_jsonable(loop) == ["a", "<cycle>"]


def test_remembered_texts_and_keys_stay_valid_utf8_and_within_bounds() -> None:
    scrubber = Scrubber()
    # scrub_text leaves surrogates alone, and remembers what it was given.
    assert scrubber.scrub_text("\ud800note") == "\ud800note"
    for _ in range(2):  # the second time from memory
        encoded = scrubber.to_jsonable({"\ud800note": "\ud800note", "\udc00token": "t"})
        assert encoded == {"\ufffdnote": "\ufffdnote", "\ufffdtoken": FILTERED}
        json.dumps(encoded).encode("utf-8")
    # A key remembered whole, then met under a bound that cuts it: judged as cut.
    first = scrubber.to_jsonable({"password_reset_hint": "x", "note": "abcdefgh"})
    assert first == {"password_reset_hint": FILTERED, "note": "abcdefgh"}
    value = {"password_reset_hint": "x", "note": "abcdefgh"}
    cut = scrubber.to_jsonable(value, max_string=5)
    assert cut == encoded_then_judged(scrubber, value, max_string=5)
    # A short text that scrubbing lengthens past 256 characters, remembered under the
    # default bound, is still cut under a bound of 256.
    grows = "token=a&" * 16
    remembered = scrubber.to_jsonable({"note": grows})
    assert isinstance(remembered, dict)
    assert len(str(remembered["note"])) > 256
    bounded = scrubber.to_jsonable({"note": grows}, max_string=256)
    assert bounded == encoded_then_judged(scrubber, {"note": grows}, max_string=256)
    assert isinstance(bounded, dict)
    assert str(bounded["note"]).endswith("…[truncated 16 chars]")


def test_remembered_keys_and_texts_are_bounded() -> None:
    scrubber = Scrubber()
    for start in range(0, 6000, 1000):
        scrubber.to_jsonable({f"key{n}": f"text{n}" for n in range(start, start + 1000)})
    assert len(scrubber._names) <= 4096
    assert len(scrubber._encoded) <= 4096
    assert len(scrubber._texts) <= 4096
    assert scrubber.to_jsonable({"key5999": "text5999", "password": "p"}) == {
        "key5999": "text5999",
        "password": FILTERED,
    }


def test_threads_sharing_a_scrubber_get_the_same_answers() -> None:
    scrubber = Scrubber()
    value = {
        f"field{n}": [f"token={n}", {"password": n, "name": "Authorization", "value": n}]
        for n in range(50)
    }
    expected = encoded_then_judged(Scrubber(), value)
    results: list[JSONValue] = []

    def encode() -> None:
        results.extend(scrubber.to_jsonable(value) for _ in range(20))

    threads = [threading.Thread(target=encode) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80
    assert all(result == expected for result in results)


def test_what_to_jsonable_remembers_is_scrubbed_even_when_switched_off_and_on() -> None:
    scrubber = Scrubber(enabled=False)
    value = {"password": "p", "note": "token=abc", "token=abc": 1}
    assert scrubber.to_jsonable(value) == value
    assert scrubber.scrub_text("token=abc") == "token=abc"
    scrubber.enabled = True
    expected = {"password": FILTERED, "note": f"token={FILTERED}", f"token={FILTERED}": FILTERED}
    assert scrubber.to_jsonable(value) == expected
    assert scrubber.to_jsonable(value) == expected  # from what was remembered


def test_switching_off_while_encoding_leaves_nothing_unscrubbed_in_memory() -> None:
    scrubber = Scrubber()

    class SwitchOff:
        def __repr__(self) -> str:
            scrubber.enabled = False
            return "switch"

    value = {"switch": SwitchOff(), "note": "token=abc", "https://u:pw@h": 1}
    scrubber.to_jsonable(value)
    assert scrubber.enabled is False
    scrubber.enabled = True
    assert scrubber.to_jsonable({"note": "token=abc", "https://u:pw@h": 1}) == {
        "note": f"token={FILTERED}",
        f"https://{FILTERED}@h": 1,
    }
