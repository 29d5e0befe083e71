"""RequestMonitor: every decision about request alerts, shared by all framework adapters.

An adapter only translates its framework's events into three calls::

    start = monitor.clock()
    try:
        response = handle(request)
    except Exception as exc:
        monitor.request_finished(lambda: info_for(request), 500, start, exc)
        raise
    monitor.request_finished(lambda: info_for(request), response.status, start)

Whether to alert, with which severity, under which dedup key, with which details and
links, is decided here. A healthy request costs a clock read and three comparisons in
:meth:`RequestMonitor.request_finished`: the request description is a callable that is
only called when an alert is about to fire, so a fast 200 builds nothing at all.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from pd_integrations import environment as env_vars
from pd_integrations.context.breadcrumbs import begin as _begin_crumbs
from pd_integrations.context.breadcrumbs import end as _end_crumbs
from pd_integrations.context.trace import TraceContext, current_trace
from pd_integrations.context.user import user_id

from .alerts import AlertManager
from .context import breadcrumbs
from .encoding import to_jsonable
from .events import Link, Severity
from .fingerprint import DEFAULT_STACK_LIMIT, Fingerprinter, message, type_name
from .scrub import Scrubber

_log = logging.getLogger("pd_integrations.monitor")

EXCEPTION_ALERT = "exception"
HANDLED_5XX_KIND = "handled_5xx"  # the kind policy rules match (pd_integrations.policy)
HTTP_ERROR_ALERT = "http_error"
SLOW_REQUEST_ALERT = "slow_request"
UNMATCHED_ROUTE = "<unmatched>"
# The request methods of RFC 9110 (and PATCH, RFC 5789). Any other method name is the
# client's own text: Django function views and mounted ASGI/WSGI apps accept whatever a
# client sends, so it never enters a dedup key, a summary or the details as such.
STANDARD_METHODS: frozenset[str] = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
OTHER_METHOD = "OTHER"
UNKNOWN_METHOD = "?"  # the request could not be described at all

DEFAULT_EXCLUDE_PATHS: tuple[str, ...] = ("/health", "/healthz", "/livez", "/readyz", "/metrics")
# Headers that help a responder and carry no credentials or personal data. Anything
# else must be asked for, and still passes through the scrubber on its way out.
DEFAULT_INCLUDE_HEADERS: tuple[str, ...] = (
    "host",
    "accept",
    "content-type",
    "content-length",
    "x-forwarded-proto",
)
REQUEST_ID_HEADERS: tuple[str, ...] = ("x-request-id", "x-correlation-id", "request-id")
TRACEPARENT_HEADER = "traceparent"
MAX_SUMMARY_MESSAGE = 200
MAX_HEADER_VALUE = 256
MAX_RUNBOOK_LINKS = 5

HeadersLike = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
StatusSeverity = Callable[[int], Severity | str | None] | Mapping[int, Severity | str | None]
RunbookMap = Mapping[str, str | Link]
DedupBy = Literal["fingerprint", "route"]

_REPORTED_ATTR = "__pd_integrations_alert_key__"
_METHOD_NAMES: dict[str, str] = {name: name for name in (*STANDARD_METHODS, UNKNOWN_METHOD)}
# Only text this short can be a standard method written in another case, so longer text
# (a client may send kilobytes) is never copied to upper case.
_LONGEST_METHOD = max(map(len, STANDARD_METHODS))


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the monitor needs to know about a request, built only when an alert fires.

    ``route`` is the route template (``/items/{item_id}``), never the raw path: it is
    what groups requests. ``path`` is used for excluded paths and shown only when no
    route matched. ``headers`` may be the whole request's headers (a mapping, or
    ``(name, value)`` pairs as str or bytes); the monitor keeps only the allowed ones.
    ``request_id`` and ``user_agent`` are taken from the headers when not given.
    ``user`` returns the framework's user object (read only with ``send_user``).
    """

    method: str = "GET"
    route: str | None = None
    path: str | None = None
    headers: HeadersLike | None = None
    request_id: str | None = None
    user_agent: str | None = None
    client_ip: str | None = None
    user: Callable[[], object] | None = None


RequestSource = RequestInfo | Callable[[], RequestInfo]
"""A :class:`RequestInfo`, or a callable building one; adapters should pass the callable."""


def default_severity_for_status(status: int) -> Severity | None:
    """``critical`` for 500, ``error`` for any other 5xx, nothing below 500."""
    if status < 500:
        return None
    return Severity.CRITICAL if status == 500 else Severity.ERROR


# -- "already reported" marker ----------------------------------------------------------


def mark_reported(exc: BaseException, dedup_key: str) -> None:
    """Record on ``exc`` that it raised the alert ``dedup_key``.

    The marker lives on the exception object, so every path that sees the same
    exception (a framework signal, the middleware, a logging handler) can tell it was
    already reported, without a registry that would keep tracebacks alive. Exceptions
    are not weak-referenceable, hence the attribute.
    """
    try:
        setattr(exc, _REPORTED_ATTR, dedup_key)
    except Exception:  # a class that forbids attributes: at worst the alert is suppressed
        _log.debug("could not mark %s as reported", type(exc).__name__)


def reported_key(exc: BaseException) -> str | None:
    """The dedup key ``exc`` was reported under, or ``None`` if it was not reported."""
    try:
        key = getattr(exc, _REPORTED_ATTR, None)
    except Exception:
        return None
    return key if isinstance(key, str) else None


# -- helpers that run only when an alert fires ------------------------------------------


def normalise_method(method: object) -> str:
    """The method as alerts show it: a standard one in upper case, else ``OTHER``.

    Requests ``X0 /pay``, ``X1 /pay``... are one incident, not one per method name: the
    method is part of route dedup keys, so a client choosing it could otherwise open any
    number of incidents and push real alerts out of the queue. ``get`` is ``GET``; the
    library's own ``?`` (an undescribable request) stays ``?``. Runs only on the path
    of an alert about to fire, never for a healthy request.
    """
    if isinstance(method, str):
        known = _METHOD_NAMES.get(method)  # the common case: one lookup, no copy
        if known is not None:
            return known
        if len(method) <= _LONGEST_METHOD:
            return _METHOD_NAMES.get(method.upper(), OTHER_METHOD)
    return OTHER_METHOD


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _header_items(headers: HeadersLike | None) -> Iterable[tuple[str, str]]:
    if headers is None:
        return ()
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    return ((_text(name).lower(), _text(value)) for name, value in items)


def _bounded(value: str, limit: int = MAX_HEADER_VALUE) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _normalise_path(path: str) -> str:
    return (path.rstrip("/") or "/") if path else path


def _status_rule(rule: StatusSeverity | None) -> StatusSeverity | None:
    """Check a status mapping now: a typo found on the first error would lose that page.

    Keys may be strings (``"503"``), as they are in settings files.
    """
    if rule is None or not isinstance(rule, Mapping):
        return rule
    checked: dict[int, Severity | None] = {}
    for status, severity in rule.items():
        checked[int(status)] = None if severity is None else Severity.parse(severity)
    return checked


def _as_link(value: str | Link, text: str) -> Link:
    return value if isinstance(value, Link) else Link(value, text)


class RequestMonitor:
    """Framework-neutral decisions about request alerts; adapters call it, never decide.

    Exceptions that end in a 5xx alert (``critical`` for 500, ``error`` for other 5xx by
    default; 4xx never), deduplicated by the exception's fingerprint (or by method and
    route with ``dedup_by="route"``). Requests slower than ``slow_request_ms`` (or their
    route's entry in ``slow_routes``; ``None`` there turns a route off) raise a
    ``warning`` deduplicated per route; ``exclude_paths`` (exact paths or route
    templates, or prefixes ending in ``*``) never raise slow-request alerts, nor alerts
    for the 5xx responses they answer themselves (a health endpoint's 503); an
    exception escaping from them still alerts.

    Every alert's event says what failed the same way in every framework: ``class`` is
    the exception's type (or the kind of alert), ``component`` the ``component``
    argument when given, else the method and route, ``group`` the service (the source). Its details
    add the trace (``trace_id``, ``span_id``, and a link from ``trace_url_template``),
    the request's last ``breadcrumbs`` log records (at most ``breadcrumb_bytes``,
    scrubbed; ``0`` turns them off) and, with ``send_user``, the user's id.

    No method of this class ever raises into the application.

    ``quiet_status_below`` and ``quiet_seconds_below`` are the bounds of a request with
    nothing to decide: no exception, a status below the first, and less time than the
    second since :meth:`clock` was read at its start. :meth:`request_finished` returns
    at once for such a request; an adapter whose per-request budget is a fraction of a
    microsecond may make the same comparison itself and skip the call.
    """

    __slots__ = (
        "_fingerprinter",
        "_include_headers",
        "_route_thresholds",
        "_scrubber",
        "_severity",
        "alerts",
        "auto_resolve",
        "begin_request",
        "breadcrumb_bytes",
        "breadcrumbs",
        "clock",
        "component",
        "dedup_by",
        "end_request",
        "environment",
        "exclude_paths",
        "exclude_prefixes",
        "ignore_exceptions",
        "quiet_seconds_below",
        "quiet_status_below",
        "runbooks",
        "send_client_ip",
        "send_user",
        "slow_request_ms",
        "stack_frames",
        "trace_url_template",
    )

    def __init__(
        self,
        alerts: AlertManager,
        *,
        slow_request_ms: float | None = None,
        slow_routes: Mapping[str, float | None] | None = None,
        exclude_paths: Iterable[str] = DEFAULT_EXCLUDE_PATHS,
        severity_for_status: StatusSeverity | None = None,
        alert_on_handled_5xx: bool = False,
        dedup_by: DedupBy = "fingerprint",
        runbooks: RunbookMap | None = None,
        environment: str | None = None,
        component: str | None = None,
        in_app_include: Iterable[str] = (),
        in_app_exclude: Iterable[str] = (),
        fingerprinter: Fingerprinter | None = None,
        stack_frames: int = DEFAULT_STACK_LIMIT,
        include_headers: Iterable[str] = DEFAULT_INCLUDE_HEADERS,
        send_client_ip: bool = False,
        ignore_exceptions: Iterable[type[BaseException]] = (),
        auto_resolve: bool = True,
        scrubber: Scrubber | None = None,
        clock: Callable[[], float] = time.perf_counter,
        trace_url_template: str | None = None,
        breadcrumbs: int = breadcrumbs.DEFAULT_BREADCRUMBS,
        breadcrumb_bytes: int = breadcrumbs.DEFAULT_BREADCRUMB_BYTES,
        send_user: bool = False,
    ) -> None:
        if dedup_by not in ("fingerprint", "route"):
            raise ValueError(f"dedup_by must be 'fingerprint' or 'route', not {dedup_by!r}")
        if slow_request_ms is not None and not slow_request_ms > 0:
            raise ValueError(f"slow_request_ms must be positive, got {slow_request_ms!r}")
        routes = dict(slow_routes or {})
        for route, ms in routes.items():
            if ms is not None and not ms > 0:
                raise ValueError(f"slow_routes[{route!r}] must be positive or None, got {ms!r}")
        self.alerts = alerts
        self.clock = clock
        self.slow_request_ms = slow_request_ms
        self._route_thresholds = {
            route: None if ms is None else ms / 1000.0 for route, ms in routes.items()
        }
        # The fast path compares against the smallest threshold anywhere: below it no
        # route can be slow, so the route (and the request description) is never needed.
        limits = [ms for ms in (slow_request_ms, *routes.values()) if ms is not None]
        self.quiet_seconds_below = min(limits) / 1000.0 if limits else math.inf
        paths = [p.strip() for p in exclude_paths if p.strip()]
        self.exclude_paths = frozenset(_normalise_path(p) for p in paths if not p.endswith("*"))
        self.exclude_prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))
        self._severity = _status_rule(severity_for_status)
        # Handled responses at or above this status go to the slow path; 1000 means never.
        self.quiet_status_below = 500 if alert_on_handled_5xx else 1000
        self.dedup_by = dedup_by
        self.runbooks = dict(runbooks or {})
        self.environment = env_vars.environment(environment)
        self.component = component
        self._fingerprinter = fingerprinter or Fingerprinter(
            in_app_include=in_app_include, in_app_exclude=in_app_exclude
        )
        self.stack_frames = stack_frames
        self._include_headers = frozenset(h.lower() for h in include_headers)
        self.send_client_ip = send_client_ip
        self.ignore_exceptions = tuple(ignore_exceptions)
        self.auto_resolve = auto_resolve
        self._scrubber = scrubber
        if breadcrumbs < 0 or breadcrumb_bytes < 0:
            raise ValueError("breadcrumbs and breadcrumb_bytes must be 0 (off) or more")
        self.trace_url_template = trace_url_template or None
        self.breadcrumbs = breadcrumbs if breadcrumb_bytes else 0
        self.breadcrumb_bytes = breadcrumb_bytes
        self.send_user = send_user
        _install_breadcrumbs(self.breadcrumbs)
        # Adapters call both around every request, in one function:
        # ``token = begin_request(request_dict)`` (the ASGI scope, the WSGI environ,
        # Django's META), then ``end_request(token)``. They are the breadcrumbs' context
        # variable's own set and reset: no Python call per request.
        self.begin_request: Callable[[MutableMapping[str, Any]], Any] = (
            _begin_crumbs if self.breadcrumbs else _none
        )
        self.end_request: Callable[[Any], None] = _end_crumbs if self.breadcrumbs else _none

    @property
    def alert_on_handled_5xx(self) -> bool:
        return self.quiet_status_below == 500

    # -- the hot path -------------------------------------------------------------------

    def request_finished(
        self,
        request: RequestSource,
        status: int,
        started: float,
        exc: BaseException | None = None,
    ) -> str | None:
        """Call once per request, after the last response byte was handed to the server.

        ``started`` is :meth:`clock` read when the request arrived; ``exc`` the exception
        that escaped the app, or one the adapter saw for this request (then it is not
        reported twice). Returns the dedup key of the alert raised, if any: the error
        alert, else the slow-request alert.
        """
        elapsed = self.clock() - started
        # Healthy and fast: three comparisons and a clock read; nothing is built.
        if exc is None and status < self.quiet_status_below and elapsed < self.quiet_seconds_below:
            return None
        try:
            return self._finished(request, status, elapsed, exc)
        except Exception:
            _log.exception("could not raise a PagerDuty alert for a request")
            return None

    # -- what adapters call when they catch an exception --------------------------------

    def exception(
        self,
        exc: BaseException,
        request: RequestSource,
        status: int = 500,
        *,
        duration: float | None = None,
    ) -> str | None:
        """Alert for ``exc`` that ended the request with ``status``; returns the dedup key.

        Nothing happens for statuses below 500, for exceptions that are not
        :class:`Exception` (cancellation, ``SystemExit``), for ignored types, or when
        ``exc`` was already reported (its key is returned then). ``duration`` is in
        seconds, when the adapter knows it.
        """
        try:
            key = reported_key(exc)
            if key is not None:
                return key
            return self._exception(exc, _Lazy(request), status, duration)
        except Exception:
            _log.exception("could not raise a PagerDuty alert for %s", type(exc).__name__)
            return None

    def already_reported(self, exc: BaseException) -> bool:
        """Was ``exc`` already reported (by any monitor, signal path or logging handler)?"""
        return reported_key(exc) is not None

    def severity_for(self, status: int) -> Severity | None:
        """The severity a response with ``status`` alerts with; ``None``: no alert."""
        if status < 500:
            return None  # a client error is never an incident, whatever the mapping says
        rule = self._severity
        if rule is None:
            return default_severity_for_status(status)
        if isinstance(rule, Mapping):
            if status not in rule:
                return default_severity_for_status(status)
            chosen = rule[status]
        else:
            try:
                chosen = rule(status)
            except Exception:
                # A broken rule must not silence the page: fall back to the default.
                _log.exception("severity_for_status(%d) raised; using the default", status)
                return default_severity_for_status(status)
        return None if chosen is None else Severity.parse(chosen)

    def slow_threshold(self, method: str, route: str | None) -> float | None:
        """The slow-request threshold for a route, in seconds; ``None``: never slow."""
        thresholds = self._route_thresholds
        if route is not None:
            for key in (f"{normalise_method(method)} {route}", route):
                if key in thresholds:
                    return thresholds[key]
        return None if self.slow_request_ms is None else self.slow_request_ms / 1000.0

    def is_excluded(self, info: RequestInfo) -> bool:
        """Is this request on an excluded path (no slow-request or handled-5xx alerts)?"""
        for candidate in (info.path, info.route):
            if not candidate:
                continue
            if _normalise_path(candidate) in self.exclude_paths:
                return True
            if self.exclude_prefixes and candidate.startswith(self.exclude_prefixes):
                return True
        return False

    # -- the slow path: only when an alert may fire -------------------------------------

    def _finished(
        self,
        request: RequestSource,
        status: int,
        elapsed: float,
        exc: BaseException | None,
    ) -> str | None:
        lazy = _Lazy(request)
        if exc is not None:
            key = reported_key(exc)
            if key is None:
                key = self._exception(exc, lazy, status, elapsed)
            if key is not None:
                return key  # the error alert says it all; a slow alert too would be noise
        elif status >= self.quiet_status_below:
            key = self._handled_error(lazy, status, elapsed)
            if key is not None:
                return key
        if elapsed >= self.quiet_seconds_below:
            return self._slow(lazy, status, elapsed)
        return None

    def _exception(
        self, exc: BaseException, lazy: _Lazy, status: int, duration: float | None
    ) -> str | None:
        if not isinstance(exc, Exception) or isinstance(exc, self.ignore_exceptions):
            return None
        severity = self.severity_for(status)
        if severity is None:
            return None
        info = lazy.get()
        route = info.route or UNMATCHED_ROUTE
        method = normalise_method(info.method)
        if self.dedup_by == "route":
            alert_type, identifier, fp = HTTP_ERROR_ALERT, f"{method} {route}", None
        else:
            fp = self._fingerprinter.fingerprint(exc)
            alert_type, identifier = EXCEPTION_ALERT, fp.digest

        # The exception's own text, read once for the summary and the details: its
        # ``__str__`` is user code that may be slow or raise (then a placeholder).
        text = message(exc)

        def details() -> dict[str, Any]:
            built: dict[str, Any] = {
                "exception_type": type_name(exc),
                "exception_message": text,
            }
            if fp is not None:
                built["fingerprint"] = fp.readable
            built["stack"] = self._fingerprinter.stack(exc, self.stack_frames)
            causes = self._fingerprinter.causes(exc)
            if causes:
                built["causes"] = causes
            built.update(self._request_details(info, status, duration))
            return built

        def runbook_names() -> tuple[str, ...]:
            # Most specific first: the class, its bases, the route, then the kind of alert.
            classes = type(exc).__mro__[:-1]  # all but ``object``
            names = [name for cls in classes for name in (type_name(cls), cls.__name__)]
            return (*names, f"{method} {route}", route, alert_type)

        summary = _exception_summary(type(exc).__name__, text, status, method, route)
        hint = _hint(EXCEPTION_ALERT, info, status, exc)
        key = self._raise(
            summary,
            severity,
            alert_type,
            identifier,
            details,
            runbook_names,
            _Context(self, info, type_name(exc), f"{method} {route}"),
            hint,
        )
        mark_reported(exc, key)
        return key

    def _handled_error(self, lazy: _Lazy, status: int, elapsed: float) -> str | None:
        severity = self.severity_for(status)
        if severity is None:
            return None
        info = lazy.get()
        if self.is_excluded(info):
            # A health endpoint answers 503 by design: its checks page for themselves.
            return None
        route = info.route or UNMATCHED_ROUTE
        method = normalise_method(info.method)
        identifier = f"{method} {route}"
        return self._raise(
            f"[{status}] response from {method} {route}",
            severity,
            HTTP_ERROR_ALERT,
            identifier,
            lambda: self._request_details(info, status, elapsed),
            lambda: (identifier, route, HTTP_ERROR_ALERT),
            _Context(self, info, HTTP_ERROR_ALERT, identifier),
            _hint(HANDLED_5XX_KIND, info, status),
        )

    def _slow(self, lazy: _Lazy, status: int, elapsed: float) -> str | None:
        info = lazy.get()
        method = normalise_method(info.method)
        threshold = self.slow_threshold(method, info.route)
        if threshold is None or elapsed < threshold or self.is_excluded(info):
            return None
        route = info.route or UNMATCHED_ROUTE
        summary = (
            f"Slow request: {method} {route} took {elapsed * 1000:.0f} ms "
            f"(threshold {threshold * 1000:.0f} ms)"
        )

        def details() -> dict[str, Any]:
            built = self._request_details(info, status, elapsed)
            built["threshold_ms"] = round(threshold * 1000, 1)
            return built

        return self._raise(
            summary,
            Severity.WARNING,
            SLOW_REQUEST_ALERT,
            route,
            details,
            lambda: (f"{method} {route}", route, SLOW_REQUEST_ALERT),
            _Context(self, info, SLOW_REQUEST_ALERT, f"{method} {route}"),
            _hint(SLOW_REQUEST_ALERT, info, status),
        )

    def _raise(
        self,
        summary: str,
        severity: Severity,
        alert_type: str,
        identifier: str,
        details: Callable[[], dict[str, Any]],
        runbook_names: Callable[[], Iterable[str]],
        context: _Context,
        hint: dict[str, Any],
    ) -> str:
        """Raise the alert with one state call; details and links are built only if read.

        Whether the trigger is sent (a new alert, or one come back more severe) or only
        counted (a repeat: the storm case) is decided by the state inside
        ``alerts.alert``. Deciding here first would cost a second state call, a network
        round trip with shared state, on every repeat; the lazy details leave nothing to
        build when the trigger is not sent.
        """
        if self._scrubber is not None:
            summary = self._scrubber.scrub_text(summary)
        links = (
            _LazyLinks(context.links, runbook_names)
            if self.runbooks or self.trace_url_template
            else None
        )
        return self.alerts.alert(
            summary,
            severity,
            alert_type=alert_type,
            component=self.component,
            identifier=identifier,
            custom_details=_LazyDetails(lambda: context.details(details()), self._scrubber),
            auto_resolve=self.auto_resolve,
            links=links,
            class_=context.class_,
            group=self.alerts.source,
            event_component=self.component or context.component,
            hint=hint,
        )

    def _request_details(
        self, info: RequestInfo, status: int, duration: float | None
    ) -> dict[str, Any]:
        details: dict[str, Any] = {"method": normalise_method(info.method), "route": info.route}
        if info.route is None and info.path:
            details["path"] = info.path
        details["status"] = status
        if duration is not None:
            details["duration_ms"] = round(duration * 1000, 1)
        request_id, user_agent = info.request_id, info.user_agent
        headers: dict[str, str] = {}
        for name, value in _header_items(info.headers):
            if request_id is None and name in REQUEST_ID_HEADERS:
                request_id = value
            elif user_agent is None and name == "user-agent":
                user_agent = value
            if name in self._include_headers:
                headers[name] = _bounded(value)
        details["request_id"] = request_id and _bounded(request_id)
        details["user_agent"] = user_agent and _bounded(user_agent)
        if headers:
            details["headers"] = headers
        if self.send_client_ip and info.client_ip:
            details["client_ip"] = info.client_ip
        details["environment"] = self.environment
        return {k: v for k, v in details.items() if v is not None and v != ""}

    def _links(self, candidates: Iterable[str]) -> list[Link] | None:
        """Runbook links for the most specific matches first, one per distinct URL."""
        if not self.runbooks:
            return None
        links: list[Link] = []
        seen: set[str] = set()
        for name in (*candidates, "*"):
            runbook = self.runbooks.get(name)
            if runbook is None:
                continue
            link = _as_link(runbook, f"Runbook ({name})")
            if link.href not in seen:
                seen.add(link.href)
                links.append(link)
                if len(links) >= MAX_RUNBOOK_LINKS:
                    break
        return links or None


def _none(*args: object) -> None:
    return None


def _install_breadcrumbs(records: int) -> None:
    try:
        breadcrumbs.install(records)
    except Exception:  # a logging setup that refuses handlers: alerts without them
        _log.exception("could not install the breadcrumb handler")


class _Context:
    """What one request's alert adds to its details and links, read at most once.

    Built with the alert, in the request's own context: the breadcrumbs and the active
    span are the failing request's.
    """

    __slots__ = ("_monitor", "_trace", "_traced", "_trail", "class_", "component", "info")

    def __init__(
        self, monitor: RequestMonitor, info: RequestInfo, class_: str, component: str
    ) -> None:
        self._monitor = monitor
        self.info = info
        self.class_ = class_
        self.component = component
        self._trail = breadcrumbs.current() if monitor.breadcrumbs else None
        self._trace: TraceContext | None = None
        self._traced = False

    def trace(self) -> TraceContext | None:
        if not self._traced:
            self._traced = True
            parent = None
            for name, value in _header_items(self.info.headers):
                if name == TRACEPARENT_HEADER:
                    parent = value
                    break
            self._trace = current_trace(parent)
        return self._trace

    def details(self, built: dict[str, Any]) -> dict[str, Any]:
        monitor = self._monitor
        trace = self.trace()
        if trace is not None:
            built["trace_id"], built["span_id"] = trace.trace_id, trace.span_id
        if monitor.send_user and self.info.user is not None:
            try:
                user = user_id(self.info.user())
            except Exception:
                _log.debug("could not read the request's user", exc_info=True)
                user = None
            if user is not None:
                built["user_id"] = user
        if self._trail:
            # Scrubbed with the other details: the monitor's scrubber if any, and the
            # events client's on the way out.
            crumbs = breadcrumbs.render(self._trail, monitor.breadcrumbs, monitor.breadcrumb_bytes)
            if crumbs:
                built["breadcrumbs"] = crumbs
        return built

    def links(self, names: Iterable[str]) -> list[Link] | None:
        links = self._monitor._links(names) or []
        trace = self.trace()
        url = trace.url(self._monitor.trace_url_template) if trace is not None else None
        if url:
            links.insert(0, Link(url, f"Trace {trace.trace_id}" if trace else "Trace"))
        return links or None


class _LazyDetails(Mapping[str, Any]):
    """An alert's details, built (and scrubbed) on first read, at most once.

    ``AlertManager.alert`` reads them only to build a trigger, so a repeat of an open
    alert builds nothing. Reading them never raises: a trigger whose alert the state
    already recorded as open must still be sent, with fewer details if need be.
    """

    __slots__ = ("_build", "_built", "_scrubber")

    def __init__(self, build: Callable[[], dict[str, Any]], scrubber: Scrubber | None) -> None:
        self._build = build
        self._scrubber = scrubber
        self._built: Mapping[str, Any] | None = None

    def _get(self) -> Mapping[str, Any]:
        if self._built is None:
            try:
                built: Any = self._build()
                if self._scrubber is not None:
                    built = self._scrubber.scrub(to_jsonable(built))
                self._built = built if isinstance(built, Mapping) else {}
            except Exception:
                _log.exception("could not build the details of a PagerDuty alert")
                self._built = {}
        return self._built

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class _LazyLinks:
    """Runbook links looked up on first read (only a trigger that is sent reads them)."""

    __slots__ = ("_built", "_find", "_names")

    def __init__(
        self,
        find: Callable[[Iterable[str]], list[Link] | None],
        names: Callable[[], Iterable[str]],
    ) -> None:
        self._find = find
        self._names = names
        self._built: list[Link] | None = None

    def _get(self) -> list[Link]:
        if self._built is None:
            try:
                self._built = self._find(self._names()) or []
            except Exception:
                _log.exception("could not look up the runbook links of a PagerDuty alert")
                self._built = []
        return self._built

    def __iter__(self) -> Iterator[Link]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class _Lazy:
    """Builds the adapter's :class:`RequestInfo` at most once, and only when asked."""

    __slots__ = ("_info", "_source")

    def __init__(self, source: RequestSource) -> None:
        self._source = source
        self._info: RequestInfo | None = None

    def get(self) -> RequestInfo:
        if self._info is None:
            source = self._source
            if isinstance(source, RequestInfo):
                self._info = source
            else:
                try:
                    self._info = source()
                except Exception:
                    # Alert without request details rather than not at all.
                    _log.exception("could not describe the request for an alert")
                    self._info = RequestInfo(method=UNKNOWN_METHOD)
        return self._info


def _hint(
    kind: str, info: RequestInfo, status: int, exc: BaseException | None = None
) -> dict[str, Any]:
    """What policy (routing rules, ``before_send``) learns about a request alert."""
    hint: dict[str, Any] = {
        "kind": kind,
        "request": info,
        "route": info.route,
        "path": info.path,
        "status": status,
    }
    if exc is not None:
        hint["exception"] = exc
    return hint


def _exception_summary(name: str, text: str, status: int, method: str, route: str) -> str:
    lines = _bounded(text, MAX_SUMMARY_MESSAGE).strip().splitlines()
    first = lines[0] if lines else ""
    what = f"{name}: {first}" if first else name
    return f"[{status}] {what} - {method} {route}"
