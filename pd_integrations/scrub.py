"""Redaction of secrets and personal data from everything that leaves the process.

Keys are matched case-insensitively after folding ``-``, spaces and ``_`` together, as
substrings: ``X-CSRFToken``, ``user_password`` and ``sessionid`` are all caught. Values
that carry credentials inside a string (``Bearer ...``, ``https://user:pass@host``,
``?token=...``) are redacted wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .encoding import JSONValue

FILTERED = "[Filtered]"

DEFAULT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "x_api_key",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "session",
        "csrf",
        "xsrf",
        "private_key",
        "credential",
        "routing_key",
        "integration_key",
        "signature",
        "ssn",
        "credit_card",
        "card_number",
    }
)

_SHORT = 4
_FOLD = re.compile(r"[-\s]+")
_AUTH_VALUE = re.compile(
    r"\b(Bearer|Basic|Digest|Token(?:\s+token=)?)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE
)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]*@", re.IGNORECASE)


def _normalise(key: str) -> str:
    return _FOLD.sub("_", key.strip().lower())


class Scrubber:
    """Replaces sensitive values with ``[Filtered]``; ``enabled=False`` leaves data as is.

    ``keys`` replaces the default key list; ``extra_keys`` adds to it.
    """

    def __init__(
        self,
        *,
        keys: Iterable[str] | None = None,
        extra_keys: Iterable[str] = (),
        enabled: bool = True,
    ) -> None:
        base = DEFAULT_SENSITIVE_KEYS if keys is None else keys
        self.keys = frozenset(_normalise(key) for key in (*base, *extra_keys) if key.strip())
        self.enabled = enabled
        self._cache: dict[str, bool] = {}
        names = "|".join(re.escape(key) for key in sorted(self.keys))
        self._query = (
            re.compile(rf"([?&;]([^=&#\s]*(?:{names})[^=&#\s]*)=)[^&#\s]*", re.IGNORECASE)
            if names
            else None
        )

    def is_sensitive(self, key: str) -> bool:
        known = self._cache.get(key)
        if known is None:
            normalised = _normalise(key)
            # Match with and without separators so "apiKey", "api-key" and "api_key" agree;
            # short keys ("ssn", "pwd") only as whole words, or "classname" would match.
            compact = normalised.replace("_", "")
            words = normalised.split("_")
            known = any(
                k in words if len(k) <= _SHORT else k in normalised or k.replace("_", "") in compact
                for k in self.keys
            )
            if len(self._cache) < 4096:
                self._cache[key] = known
        return known

    def scrub_text(self, text: str) -> str:
        """Redact credentials embedded in a string."""
        if not self.enabled:
            return text
        text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
        text = _URL_USERINFO.sub(rf"\1{FILTERED}@", text)
        if self._query is not None and "=" in text:
            text = self._query.sub(rf"\1{FILTERED}", text)
        return text

    def scrub(self, value: JSONValue) -> JSONValue:
        """A scrubbed copy of a JSON-compatible value; the input is never modified."""
        if not self.enabled:
            return value
        try:
            return self._scrub(value)
        except RecursionError:
            return FILTERED

    def _scrub(self, value: JSONValue) -> JSONValue:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {
                key: FILTERED if self.is_sensitive(key) else self._scrub(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            # A (name, value) pair, as headers often are: filter the value by the name.
            if len(value) == 2 and isinstance(value[0], str) and self.is_sensitive(value[0]):
                return [value[0], FILTERED]
            return [self._scrub(item) for item in value]
        return value


DEFAULT_SCRUBBER = Scrubber()
