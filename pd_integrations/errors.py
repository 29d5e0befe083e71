"""The library's exceptions, all under one base class :class:`PagerDutyError`."""

from __future__ import annotations

from collections.abc import Sequence


class PagerDutyError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(PagerDutyError, ValueError):
    """A setting is missing or malformed (routing key, base URL, threshold...)."""


class InvalidEventError(PagerDutyError, ValueError):
    """The event is invalid: rejected locally before sending, or by PagerDuty with a 400.

    ``errors`` holds PagerDuty's list of reasons (or the local ones); ``status_code``
    is 400 when PagerDuty answered, ``None`` when the event never left the process.
    Invalid events are never retried.
    """

    def __init__(
        self, message: str, errors: Sequence[str] = (), *, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors)
        self.status_code = status_code

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}: {'; '.join(self.errors)}" if self.errors else base


class DeliveryError(PagerDutyError):
    """The event could not be delivered: network failure, timeout or a 5xx answer.

    Raised only after the retry policy gave up. ``status_code`` is the last HTTP
    status seen, or ``None`` when no answer came back at all.
    """

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class RateLimitedError(DeliveryError):
    """PagerDuty kept answering 429 until the retry policy gave up."""


class UnknownAlertError(PagerDutyError, KeyError):
    """An operation named an alert this manager does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown alert"


class RestError(PagerDutyError):
    """The REST API refused a request, or could not be reached (:mod:`pd_integrations.rest.client`).

    ``status_code`` is the HTTP status (``None`` when no answer came back, or when the
    request was refused locally before sending); ``code``, ``message`` and ``errors``
    are PagerDuty's ``error.code``, ``error.message`` and ``error.errors`` when it sent
    them; ``attempts`` counts the HTTP attempts made.
    """

    def __init__(
        self,
        text: str,
        *,
        status_code: int | None = None,
        code: int | None = None,
        message: str | None = None,
        errors: Sequence[str] = (),
        attempts: int = 0,
    ) -> None:
        # Cooperative: a subclass that also derives from DeliveryError gets its
        # __init__ here, which resets status_code/attempts; ours are set after it.
        super().__init__(text)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors: list[str] = list(errors)
        self.attempts = attempts


class RestInvalidRequestError(RestError, ValueError):
    """PagerDuty answered 400 (or 422), or the arguments were refused before sending."""


class RestUnauthorizedError(RestError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class RestForbiddenError(RestError):
    """HTTP 403: the API key may not do this (a read-only key writing, a missing role)."""


class RestNotFoundError(RestError):
    """HTTP 404: no such incident, service, user, window or schedule."""


class RestRateLimitedError(RestError, RateLimitedError):
    """PagerDuty kept answering 429 until the retry budget ran out."""


class RestServerError(RestError, DeliveryError):
    """PagerDuty answered 5xx, or could not be reached, until the retry budget ran out.

    ``status_code`` is ``None`` when no answer came back at all. A write that failed
    this way may or may not have been applied.
    """
