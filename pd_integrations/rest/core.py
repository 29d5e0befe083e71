"""What the sync and async REST clients share: settings, headers, and the start of a call."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from pd_integrations import environment
from pd_integrations.client import RetryPolicy, _user_agent, resolve_base_url
from pd_integrations.errors import ConfigurationError, PagerDutyError
from pd_integrations.events import mask_key
from pd_integrations.state.base import safe_url

from .operations import Request
from .retry import RestCall

__all__ = ["DEFAULT_REST_BASE_URL", "Ids", "RestBase", "When"]

DEFAULT_REST_BASE_URL: Final = "https://api.pagerduty.com"
_SHORTEST_REDACTED_KEY: Final = 8


Ids = str | Iterable[str] | None
"""Ids (or enum values) accepted by a filter: one string, several, or none."""
When = datetime | str | None
"""A time filter: a timezone-aware datetime or an ISO 8601 string."""


def _check_api_key(key: str | None) -> str:
    if not key:
        raise ConfigurationError(
            "no PagerDuty REST API key: pass api_key= or set PAGERDUTY_API_KEY "
            "(create one under Integrations > API Access Keys)"
        )
    if not isinstance(key, str) or not key.isascii() or not key.isprintable() or " " in key:
        raise ConfigurationError(
            f"malformed PagerDuty REST API key {mask_key(str(key))}: it must be printable "
            "ASCII without spaces"
        )
    return key


def _check_from_email(email: str | None) -> str | None:
    if email is None:
        return None
    if not isinstance(email, str) or "@" not in email or any(c.isspace() for c in email):
        raise ConfigurationError(
            f"from_email must be the email address of a PagerDuty user, got {email!r}"
        )
    return email


def _resolve_rest_base_url(explicit: str | None) -> str:
    url = environment.rest_base_url(explicit) or DEFAULT_REST_BASE_URL
    try:
        return resolve_base_url(url)
    except ConfigurationError:
        raise ConfigurationError(
            "the PagerDuty REST base URL must be an http:// or https:// URL with a host "
            f"and no query (such as {DEFAULT_REST_BASE_URL}), got {safe_url(url)!r}"
        ) from None


class RestBase:
    """Configuration, headers and the per-request decisions both clients share."""

    def __init__(
        self,
        api_key: str | None,
        *,
        from_email: str | None,
        base_url: str | None,
        timeout: float,
        max_attempts: int,
        max_wait: float,
        clock: Callable[[], float],
        rng: random.Random | None,
    ) -> None:
        self._api_key = _check_api_key(api_key or environment.env_value(environment.API_KEY_VAR))
        self.from_email = _check_from_email(
            from_email or environment.env_value(environment.FROM_EMAIL_VAR)
        )
        self.base_url = _resolve_rest_base_url(base_url)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be a whole number >= 1, not {max_attempts}"
            )
        if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not max_wait > 0:
            raise ConfigurationError(
                f"max_wait must be a positive number of seconds, not {max_wait}"
            )
        self.timeout = float(timeout)
        self.retry = RetryPolicy(
            max_attempts=max_attempts,
            base_delay=0.5,
            max_delay=30.0,
            deadline=float(max_wait),
            rate_limited_base_delay=2.0,
        )
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} api_key={mask_key(self._api_key)} "
            f"from_email={self.from_email!r} base_url={safe_url(self.base_url)!r}"
            f"{' closed' if self._closed else ''}>"
        )

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Token token={self._api_key}",
            "Accept": "application/vnd.pagerduty+json;version=2",
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
        }

    def _redact(self, text: str) -> str:
        # A key of a few characters is a test stand-in, not a secret; replacing it
        # everywhere would garble every message ("unknown" with key "k").
        if len(self._api_key) < _SHORTEST_REDACTED_KEY:
            return text
        return text.replace(self._api_key, mask_key(self._api_key))

    def _start(self, request: Request) -> tuple[str, dict[str, str], RestCall]:
        """The URL and extra headers of ``request``, and its retry state.

        Raises before anything is sent when the client is closed or a write needs a
        ``From`` address that was never configured.
        """
        if self._closed:
            raise PagerDutyError(f"{type(self).__name__} is closed")
        headers: dict[str, str] = {}
        if request.needs_from:
            if self.from_email is None:
                raise ConfigurationError(
                    f"{request.method} {request.path} needs the email of a PagerDuty user "
                    "(the From header): pass from_email= or set PAGERDUTY_DEFAULT_FROM_EMAIL"
                )
            headers["From"] = self.from_email
        call = RestCall(
            request, policy=self.retry, clock=self._clock, rng=self._rng, redact=self._redact
        )
        return self.base_url + request.path, headers, call
