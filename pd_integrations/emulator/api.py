"""Routing: one parsed HTTP request in, one response out, with no sockets involved.

``/v2/*`` is PagerDuty's Events API (where faults apply); ``/rest/*`` a subset of its
REST API v2 (see :mod:`.rest`); ``/api/*`` is the emulator's own JSON API for tests and
the console; ``/`` is the console page. Only an injected fault ever produces a 5xx
answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import rules
from .faults import Decision, FaultConfig, FaultInjector
from .state import ALERT_STATUSES, AlertClosed, Store, UnknownAlert
from .throttle import SlidingWindow
from .webhook_sender import WebhookSender

REST_PREFIX = "/rest"
ENQUEUE_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
JSON_TYPE = "application/json"

ACCEPTED = {"status": "success", "message": "Event processed"}
CHANGE_ACCEPTED = {"status": "success", "message": "Change event processed"}
INVALID = {"status": "invalid event", "message": "Event object is invalid"}
INVALID_ROUTING_KEY = "Invalid routing key"
# PagerDuty's OpenAPI file shows this shape for a body that is not JSON ("JSON parse
# error"); it is used for JSON that is not an object too.
UNRECOGNIZED = {"status": "Unrecognized object", "message": "Event object format is unrecognized"}
THROTTLED = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}
FAULT_HEADER = "X-Emulator-Fault"
_READ_ONLY_FAULT_FIELDS = frozenset({"outage_remaining", "seed"})

_ALERT_ROUTE = re.compile(r"/api/alerts/([^/]+)")
_ALERT_ACTION_ROUTE = re.compile(r"/api/alerts/([^/]+)/(acknowledge|resolve)")
_ALERT_NOTES_ROUTE = re.compile(r"/api/alerts/([^/]+)/notes")


@dataclass(frozen=True)
class Request:
    """An HTTP request as the server read it.

    ``body_error`` says why the body is not usable (too large, incomplete); the body is
    then empty. ``headers`` has lower-case names.
    """

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    body: bytes = b""
    size: int = 0
    body_error: str | None = None


@dataclass
class Response:
    """What to answer; ``drop`` closes the connection without any answer."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


def json_response(status: int, data: object, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return Response(status, body, headers={"Cache-Control": "no-store", **(headers or {})})


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def _with_headers(response: Response, headers: Mapping[str, str]) -> Response:
    response.headers.update(headers)
    return response


def _inline_hashes(html: str, tag: str) -> list[str]:
    """CSP hashes of every inline ``<tag>`` block, so the page runs without 'unsafe-inline'."""
    pattern = re.compile(rf"<{tag}>(.*?)</{tag}>", re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in pattern.findall(html)
    ]


class App:
    """The emulator's behaviour, independent of how requests arrive.

    ``rest`` answers ``/rest/*`` (a 404 without it); ``webhooks`` is the sender whose
    deliveries ``GET /api/webhooks`` shows; the console's buttons act as the user
    ``console_user``; ``guard`` sees every request first and may refuse it (see
    :mod:`.guard`).
    """

    def __init__(
        self,
        store: Store,
        faults: FaultInjector,
        window: SlidingWindow,
        console_html: str,
        *,
        rest: Callable[[Request], Response] | None = None,
        webhooks: WebhookSender | None = None,
        console_user: str | None = None,
        guard: Callable[[Request], Response | None] | None = None,
        insights: Callable[[Request], Response] | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.window = window
        self.rest = rest
        self.webhooks = webhooks
        self.console_user = console_user
        self.guard = guard
        # Routing keys answered as PagerDuty answers a deleted integration's key.
        self.revoked: set[str] = set()
        self._console = console_html.encode()
        scripts = " ".join(_inline_hashes(console_html, "script"))
        styles = " ".join(_inline_hashes(console_html, "style"))
        self._console_headers = {
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                f"default-src 'none'; script-src {scripts}; style-src {styles}; "
                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        self._routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/api/alerts"): self._list_alerts,
            ("GET", "/api/events"): lambda r: self._since(r, self.store.events),
            ("GET", "/api/requests"): lambda r: self._since(r, self.store.requests),
            ("GET", "/api/stats"): lambda r: json_response(200, self.stats()),
            ("GET", "/api/health"): lambda r: json_response(200, {"status": "ok"}),
            ("POST", "/api/reset"): self._reset,
            ("GET", "/api/faults"): lambda r: json_response(200, self.faults.snapshot()),
            ("PUT", "/api/faults"): lambda r: self._set_faults(r, merge=False),
            ("PATCH", "/api/faults"): lambda r: self._set_faults(r, merge=True),
            ("DELETE", "/api/faults"): self._clear_faults,
            ("GET", "/api/webhooks"): self._webhooks,
        }
        if insights is not None:
            self._routes[("GET", "/api/insights")] = insights

    def handle(self, request: Request) -> Response:
        refused = self.guard(request) if self.guard is not None else None
        if refused is not None:
            return refused
        path = request.path
        if path == "/v2" or path.startswith("/v2/"):
            return self._events_api(request)
        if path == REST_PREFIX or path.startswith(REST_PREFIX + "/"):
            if self.rest is None:
                return _error(404, "the REST API is not enabled")
            return self.rest(request)
        if path == "/":
            if request.method != "GET":
                return _with_headers(_error(405, "method not allowed"), {"Allow": "GET"})
            return Response(
                200, self._console, "text/html; charset=utf-8", dict(self._console_headers)
            )
        if path == "/favicon.ico":
            return Response(204)
        return self._api(request)

    def stats(self) -> dict[str, Any]:
        return {
            **self.store.stats(),
            "rate_limit_per_minute": self.window.limit,
            "faults": self.faults.snapshot(),
        }

    def reset(self) -> None:
        """Forget alerts, events, requests and rate windows, and clear every fault."""
        self.store.reset()
        self.window.reset()
        self.faults.clear()
        self.revoked.clear()
        if self.webhooks is not None:
            self.webhooks.reset()

    # -- the Events API -----------------------------------------------------------------

    def _events_api(self, request: Request) -> Response:
        decision = self.faults.decide()
        if decision.kind == "pass":
            response = self._enqueue(request)
        else:
            response = self._injected(request, decision)
        response.delay = decision.delay
        return response

    def _injected(self, request: Request, decision: Decision) -> Response:
        headers = {FAULT_HEADER: decision.reason or decision.kind}
        if decision.kind == "drop":
            response = Response(0, headers=headers, drop=True)
        elif decision.kind == "throttle":
            response = json_response(429, THROTTLED, headers)
        else:
            status = decision.status or 500
            body = {
                "status": "error",
                "message": f"Injected fault ({decision.reason}): HTTP {status}",
            }
            response = json_response(status, body, headers)
        self.store.record_request(
            request.method,
            request.path,
            None if response.drop else response.status,
            size=request.size,
            fault=decision.reason,
        )
        return response

    def _enqueue(self, request: Request) -> Response:
        kind = {ENQUEUE_PATH: "event", CHANGE_PATH: "change"}.get(request.path)
        document: object = None
        errors: list[str] = []
        if kind is None:
            response = _error(404, f"no Events API endpoint at {request.path}")
        elif request.method != "POST":
            response = _with_headers(_error(405, "method not allowed"), {"Allow": "POST"})
        elif request.body_error is not None:
            errors = [request.body_error]
            response = json_response(400, {**INVALID, "errors": errors})
        else:
            document, parse_error = rules.parse_json(request.body)
            if parse_error is not None:
                errors = [parse_error]
                response = json_response(400, {**UNRECOGNIZED, "errors": errors})
            else:
                response, errors = self._judge(request, kind, document)
        self.store.record_request(
            request.method,
            request.path,
            response.status,
            size=request.size,
            body=document,
            raw=request.body if document is None and request.body else None,
            errors=errors,
        )
        return response

    def _judge(self, request: Request, kind: str, document: object) -> tuple[Response, list[str]]:
        # Every request naming a routing key counts against that key, valid or not, as
        # PagerDuty limits requests per integration key.
        key = document.get("routing_key") if isinstance(document, dict) else None
        if isinstance(key, str) and not self.window.admit(key):
            return json_response(429, THROTTLED), []
        if kind == "change":
            errors = rules.validate_change_event(document)
        else:
            errors = rules.validate_event(document)
        if not rules.is_json_media_type(request.content_type):
            errors.append(rules.CONTENT_TYPE_ERROR)
        if not errors and key in self.revoked:
            errors.append(INVALID_ROUTING_KEY)
        if errors:
            status_body = UNRECOGNIZED if rules.NOT_AN_OBJECT in errors else INVALID
            return json_response(400, {**status_body, "errors": errors}), errors
        assert isinstance(document, dict)
        if kind == "change":
            self.store.process_change(document)
            return json_response(202, CHANGE_ACCEPTED), []
        result = self.store.process_event(document)
        return json_response(202, {**ACCEPTED, "dedup_key": result.dedup_key}), []

    # -- the emulator's own API ----------------------------------------------------------

    def _api(self, request: Request) -> Response:
        route = self._routes.get((request.method, request.path))
        if route is not None:
            return route(request)
        allowed = sorted(method for method, path in self._routes if path == request.path)
        if allowed:
            return _with_headers(_error(405, "method not allowed"), {"Allow": ", ".join(allowed)})
        action = _ALERT_ACTION_ROUTE.fullmatch(request.path)
        if action is not None:
            if request.method != "POST":
                return _with_headers(_error(405, "method not allowed"), {"Allow": "POST"})
            return self._respond(action.group(1), action.group(2))
        notes = _ALERT_NOTES_ROUTE.fullmatch(request.path)
        if notes is not None:
            if request.method != "POST":
                return _with_headers(_error(405, "method not allowed"), {"Allow": "POST"})
            return self._add_note(request, notes.group(1))
        one = _ALERT_ROUTE.fullmatch(request.path)
        if one is not None:
            if request.method != "GET":
                return _with_headers(_error(405, "method not allowed"), {"Allow": "GET"})
            try:
                return json_response(200, self.store.alert(one.group(1)))
            except UnknownAlert:
                return _error(404, f"no alert with id {one.group(1)}")
        return _error(404, f"nothing at {request.path}")

    def _list_alerts(self, request: Request) -> Response:
        status = _query_value(request, "status")
        if status is not None and status not in ALERT_STATUSES:
            return _error(400, f"status must be one of {', '.join(ALERT_STATUSES)}")
        alerts = self.store.alerts(
            status=status,
            routing_key=_query_value(request, "routing_key"),
            dedup_key=_query_value(request, "dedup_key"),
        )
        return json_response(200, alerts)

    def _since(self, request: Request, read: Callable[[int], list[dict[str, Any]]]) -> Response:
        since = _query_value(request, "since") or "0"
        if not since.isascii() or not since.isdigit():
            return _error(400, "since must be a non-negative integer")
        return json_response(200, read(int(since)))

    def _respond(self, alert_id: str, action: str) -> Response:
        try:
            if action == "acknowledge":
                alert = self.store.respond(alert_id, "acknowledge", agent=self.console_user)
            else:
                alert = self.store.respond(alert_id, "resolve", agent=self.console_user)
        except UnknownAlert:
            return _error(404, f"no alert with id {alert_id}")
        except AlertClosed as closed:
            return _error(409, str(closed))
        return json_response(200, alert)

    def _add_note(self, request: Request, alert_id: str) -> Response:
        document, parse_error = rules.parse_json(request.body or b"{}")
        content = document.get("content") if isinstance(document, dict) else None
        if request.body_error or parse_error or not isinstance(content, str) or not content.strip():
            return _error(400, 'the body must be {"content": "<the note>"}')
        try:
            note = self.store.add_note(alert_id, content, agent=self.console_user, via="console")
        except UnknownAlert:
            return _error(404, f"no alert with id {alert_id}")
        return json_response(201, note)

    def _webhooks(self, request: Request) -> Response:
        sender = self.webhooks
        return json_response(
            200,
            {
                "url": sender.url if sender else None,
                "subscription_id": sender.subscription_id if sender else None,
                "deliveries": sender.deliveries() if sender else [],
            },
        )

    def _reset(self, request: Request) -> Response:
        self.reset()
        return json_response(200, {"status": "ok"})

    def _set_faults(self, request: Request, *, merge: bool) -> Response:
        if request.body_error is not None:
            return _error(400, request.body_error)
        document, parse_error = rules.parse_json(request.body or b"{}")
        if parse_error is not None or not isinstance(document, dict):
            return _error(400, "the body must be a JSON object of fault settings")
        # What GET returned can be sent back unchanged: its read-only fields are ignored.
        settings = {k: v for k, v in document.items() if k not in _READ_ONLY_FAULT_FIELDS}
        try:
            if merge:
                self.faults.update(**settings)
            else:
                self.faults.configure(FaultConfig.from_mapping(settings))
        except (TypeError, ValueError) as invalid:
            return _error(400, str(invalid))
        return json_response(200, self.faults.snapshot())

    def _clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return json_response(200, self.faults.snapshot())


def _query_value(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None
