"""PagerDuty webhook signatures: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]``.

The signature is the hex HMAC-SHA256 of the **raw** request body under the
subscription's secret. It must be checked on the bytes as received: JSON parsed and
serialised again differs in spacing or key order and never matches.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from pd_integrations.errors import ConfigurationError

__all__ = ["SIGNATURE_HEADER", "parse_secrets", "sign_body", "verify_signature"]

SIGNATURE_HEADER = "X-PagerDuty-Signature"
_SECRET_SEPARATORS = re.compile(r"[\s,]+")


def sign_body(raw_body: bytes, secret: str) -> str:
    """The ``X-PagerDuty-Signature`` entry PagerDuty sends for ``raw_body``: ``v1=<hex>``."""
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def parse_secrets(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Secrets from one string (several separated by commas or whitespace) or a list.

    :raises ConfigurationError: an entry is not a string.
    """
    if value is None:
        return ()
    if isinstance(value, bytes | bytearray):
        raise ConfigurationError("webhook secrets must be strings, not bytes")
    items: list[object] = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"webhook secrets must be strings, not {type(item).__name__}")
        found.extend(part for part in _SECRET_SEPARATORS.split(item) if part)
    return tuple(dict.fromkeys(found))


def verify_signature(raw_body: bytes, header: str | None, secrets: str | Iterable[str]) -> bool:
    """Is ``header`` a valid PagerDuty signature of ``raw_body`` under one of ``secrets``?

    Every ``v1=`` entry of the comma-separated header is compared, in constant time,
    with the HMAC-SHA256 of the raw body under every secret (several during rotation);
    entries of other versions are ignored. An empty body or no header is never valid.
    ``secrets`` is one secret or several; a single string is used whole, not split.
    """
    # An empty secret is no secret: anyone can compute an HMAC under it.
    keys = [key for key in ([secrets] if isinstance(secrets, str) else secrets) if key]
    if not raw_body or not header or not keys:
        return False
    expected = [sign_body(raw_body, key)[3:].encode("ascii") for key in keys]
    matched = False
    for entry in header.split(","):
        version, _, signature = entry.strip().partition("=")
        if version != "v1":
            continue
        given = signature.strip().lower().encode("utf-8", "replace")
        for digest in expected:
            # No early exit: the time taken must not tell which entry or secret matched.
            matched |= hmac.compare_digest(given, digest)
    return matched
