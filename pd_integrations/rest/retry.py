"""How one REST API v2 request is retried, and what its failures become, without any I/O.

The rules: 429 waits for ``ratelimit-reset`` seconds (``Retry-After`` or jittered
backoff when PagerDuty sends neither); 5xx answers and network failures are retried
with full-jitter backoff; other 4xx answers never are. Writes that a second copy
would apply twice are only re-sent when the first copy surely never arrived. Every
request stops after ``max_attempts`` attempts or ``max_wait`` seconds of waiting.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pd_integrations.client import RetryPolicy
from pd_integrations.errors import (
    RestError,
    RestForbiddenError,
    RestInvalidRequestError,
    RestNotFoundError,
    RestRateLimitedError,
    RestServerError,
    RestUnauthorizedError,
)

from .operations import JSON, Request

__all__ = ["Done", "RestCall", "error_for_answer", "rate_limit_wait"]

_log = logging.getLogger("pd_integrations.rest")

_ERRORS_BY_STATUS: dict[int, type[RestError]] = {
    400: RestInvalidRequestError,
    401: RestUnauthorizedError,
    403: RestForbiddenError,
    404: RestNotFoundError,
    422: RestInvalidRequestError,
    429: RestRateLimitedError,
}

# Failures where the request surely never reached PagerDuty: safe to re-send any write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Done:
    """A 2xx answer: its JSON object, or ``None`` for an empty body (``204``)."""

    value: JSON | None


def _decode(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks to wait: ``ratelimit-reset``, else ``Retry-After``, else ``None``."""
    for name in ("ratelimit-reset", "retry-after"):
        try:
            seconds = float(headers.get(name, ""))
        except ValueError:
            continue  # absent, or an HTTP date: fall back to backoff
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def error_for_answer(
    request: Request,
    status: int,
    content: bytes,
    *,
    attempts: int,
    redact: Callable[[str], str] = str,
) -> RestError:
    """The typed error for a non-2xx answer, carrying PagerDuty's ``error`` object."""
    body = _decode(content)
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    reason = httpx.codes.get_reason_phrase(status) or "unknown status"
    message = error.get("message") if isinstance(error.get("message"), str) else None
    raw_errors = error.get("errors")
    errors = [str(item) for item in raw_errors] if isinstance(raw_errors, list) else []
    kind = _ERRORS_BY_STATUS.get(status, RestServerError if status >= 500 else RestError)
    text = f"PagerDuty answered {request.method} {request.path} with HTTP {status}: "
    text += message or reason
    if code is not None:
        text += f" (code {code})"
    if errors:
        text += f": {'; '.join(errors)}"
    return kind(
        redact(text),
        status_code=status,
        code=code,
        message=redact(message) if message is not None else None,
        errors=[redact(item) for item in errors],
        attempts=attempts,
    )


class RestCall:
    """One request's way through its attempts: after each, done, wait, or give up.

    ``on_answer`` and ``on_error`` return :class:`Done` or the seconds to wait before
    the next attempt, and raise the final :class:`RestError` when there is none.
    """

    def __init__(
        self,
        request: Request,
        *,
        policy: RetryPolicy,
        clock: Callable[[], float],
        rng: random.Random,
        redact: Callable[[str], str],
    ) -> None:
        self.request = request
        self.attempts = 0
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._redact = redact
        self._deadline = clock() + policy.deadline

    def started(self) -> None:
        """Count (and log) an attempt about to be made."""
        self.attempts += 1
        _log.debug(
            "%s %s (attempt %d of at most %d)",
            self.request.method,
            self.request.path,
            self.attempts,
            self._policy.max_attempts,
        )

    def on_answer(self, status: int, headers: Mapping[str, str], content: bytes) -> Done | float:
        if 200 <= status < 300:
            return self._success(status, content)
        if status < 400:
            raise RestError(
                f"unexpected answer from PagerDuty to {self.request.method} "
                f"{self.request.path}: HTTP {status}; check the REST base URL",
                status_code=status,
                attempts=self.attempts,
            )
        error = error_for_answer(
            self.request, status, content, attempts=self.attempts, redact=self._redact
        )
        if status == 429:
            # A 429 is refused before any processing: every request may be re-sent.
            return self._wait_or_give_up(error, rate_limit_wait(headers), rate_limited=True)
        if status >= 500:
            if not self.request.replay_safe:
                raise self._unsafe_to_resend(error)
            return self._wait_or_give_up(error, None, rate_limited=False)
        raise error

    def on_error(self, exc: httpx.HTTPError) -> float:
        detail = self._redact(str(exc)) or "no details"
        error = RestServerError(
            f"could not reach PagerDuty for {self.request.method} {self.request.path}: "
            f"{type(exc).__name__}: {detail}",
            attempts=self.attempts,
        )
        if not self.request.replay_safe and not isinstance(exc, _NOT_SENT):
            raise self._unsafe_to_resend(error) from exc
        try:
            return self._wait_or_give_up(error, None, rate_limited=False)
        except RestError as final:
            raise final from exc

    def _success(self, status: int, content: bytes) -> Done:
        if status == 204 or not content.strip():
            return Done(None)
        body = _decode(content)
        if not isinstance(body, dict):
            raise RestError(
                f"unexpected answer from PagerDuty to {self.request.method} "
                f"{self.request.path}: HTTP {status} without a JSON object",
                status_code=status,
                attempts=self.attempts,
            )
        return Done(body)

    def _wait_or_give_up(
        self, error: RestError, asked: float | None, *, rate_limited: bool
    ) -> float:
        remaining = self._deadline - self._clock()
        if self.attempts >= self._policy.max_attempts:
            raise self._give_up(error, f"gave up after {self.attempts} attempts")
        if asked is not None:
            # Waiting less than PagerDuty asks would only earn another 429; the jitter
            # keeps clients limited together from all coming back at the same instant.
            delay = asked + self._rng.uniform(0.0, 1.0)
            if delay > remaining:
                raise self._give_up(
                    error,
                    f"gave up: PagerDuty asks to wait {asked:g} s, more than the "
                    f"{max(remaining, 0):.0f} s left of max_wait",
                )
        else:
            if remaining <= 0:
                raise self._give_up(
                    error, f"gave up: max_wait used up after {self.attempts} attempts"
                )
            delay = min(
                self._policy.backoff(self.attempts, rate_limited=rate_limited, rng=self._rng),
                remaining,
            )
        _log.debug(
            "%s %s attempt %d failed (%s); retrying in %.2f s",
            self.request.method,
            self.request.path,
            self.attempts,
            error,
            delay,
        )
        return delay

    def _give_up(self, error: RestError, why: str) -> RestError:
        _log.warning("%s %s failed: %s [%s]", self.request.method, self.request.path, error, why)
        return self._annotated(error, why)

    def _unsafe_to_resend(self, error: RestError) -> RestError:
        return self._annotated(
            error,
            f"not retried: this {self.request.method} may or may not have been applied; "
            "check before sending it again",
        )

    def _annotated(self, error: RestError, note: str) -> RestError:
        """``error`` again, same class and details, with ``note`` appended to its text."""
        return type(error)(
            f"{error} [{note}]",
            status_code=error.status_code,
            code=error.code,
            message=error.message,
            errors=error.errors,
            attempts=self.attempts,
        )
