"""Events API v2 models and PagerDuty's limits.

Events validate at construction, so a bad call fails where it is written, and
:func:`encode_event` turns one into the exact body to POST: it never produces a body
that PagerDuty's documented limits would reject, and never fails to encode one.

Text is made valid UTF-8 at construction (a lone surrogate becomes U+FFFD) but kept
longer than PagerDuty's limits: :func:`encode_event` scrubs each text first and cuts it
to the limit after, so a secret straddling the limit is redacted whole rather than cut
in half. Only text longer than the limit plus the scrubber's reading window
(:data:`~pd_integrations.encoding.REDACT_CONTEXT`) is capped at construction, with a
``…`` the scrubber recognises as a cut.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from .encoding import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    REDACT_CONTEXT,
    JSONValue,
    dumps,
    to_jsonable,
    utf8_safe,
)
from .errors import ConfigurationError, InvalidEventError
from .scrub import DEFAULT_SCRUBBER, Scrubber

MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_BODY_BYTES = 512 * 1024
ROUTING_KEY_LENGTH = 32
# PagerDuty documents no limit for these, but an unbounded string could push the body
# past 512 KB; the summary's limit is a generous, predictable cap.
MAX_FIELD = 1024

ENQUEUE_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
TRUNCATION_MARKER = "_pd_truncated"

_ELLIPSIS = "…"
_ROUTING_KEY_RE = re.compile(r"[A-Za-z0-9]{32}")
# Built once: json.dumps with options builds an encoder per call, on the caller's thread.
# It keeps no state between calls, so threads share it. No cycle check: a body is a tree
# built by _body, from the encoder's output (which never holds a cycle).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class Severity(StrEnum):
    """PagerDuty's four severities; plain strings are accepted wherever one is expected."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        if value.__class__ is cls:
            return value
        known = _SEVERITY_BY_NAME.get(value) if isinstance(value, str) else None
        if known is not None:
            return known
        try:
            return cls(value.lower() if isinstance(value, str) else value)
        except (ValueError, AttributeError):
            allowed = ", ".join(s.value for s in cls)
            raise InvalidEventError(
                f"unknown severity {value!r}: expected one of {allowed}"
            ) from None

    @property
    def rank(self) -> int:
        """Higher is more urgent; the dispatcher drops low ranks first."""
        return _SEVERITY_RANK[self]


_SEVERITY_BY_NAME = {severity.value: severity for severity in Severity}
_SEVERITY_RANK = {Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3, Severity.CRITICAL: 4}


def mask_key(key: str | None) -> str:
    """A routing or API key in a form safe for logs: only its last four characters."""
    if not key:
        return "<none>"
    return "****" + key[-4:] if len(key) > 8 else "****"


def check_routing_key(key: str | None) -> str:
    """Return ``key`` if it looks like a PagerDuty integration key; else ConfigurationError."""
    if not key:
        raise ConfigurationError(
            "no PagerDuty routing key: pass routing_key= or set PAGERDUTY_ROUTING_KEY"
        )
    if not isinstance(key, str) or not _ROUTING_KEY_RE.fullmatch(key):
        length = len(key) if isinstance(key, str) else 0
        raise ConfigurationError(
            f"malformed PagerDuty routing key {mask_key(str(key))}: an integration key is "
            f"{ROUTING_KEY_LENGTH} letters and digits (got {length} characters)"
        )
    return key


def new_dedup_key() -> str:
    return uuid.uuid4().hex


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, ending with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def fit_dedup_key(key: str) -> str:
    """Keys over 255 characters become a readable prefix plus a hash of the whole key.

    The hash keeps distinct long keys distinct and the same long key stable, so
    deduplication still works.
    """
    if len(key) <= MAX_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[: MAX_DEDUP_KEY - len(digest) - 1] + "#" + digest


def format_timestamp(value: datetime | str) -> str:
    """RFC 3339 in UTC with a ``Z``; naive datetimes are refused as ambiguous."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEventError(f"timestamp {value!r} is not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise InvalidEventError(f"timestamp must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError(
            "timestamp must be timezone-aware (for example datetime.now(timezone.utc))"
        )
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _held_text(text: str, limit: int) -> str:
    """``text`` as valid UTF-8, whole as far as the scrubber will read past ``limit``.

    The cut to ``limit`` itself waits for :func:`_sent_text`, after scrubbing.
    """
    if len(text) > limit + REDACT_CONTEXT:
        text = truncate(text, limit + REDACT_CONTEXT)
    return text if text.isascii() else utf8_safe(text)


def _sent_text(text: str, limit: int, scrubber: Scrubber | None) -> str:
    """Scrub, then cut: a secret straddling ``limit`` is seen whole by the scrubber."""
    if scrubber is not None:
        text = scrubber.scrub_text(text)
    return truncate(text, limit)


def _optional_text(name: str, value: object, limit: int = MAX_FIELD) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEventError(f"{name} must be a string, not {type(value).__name__}")
    return _held_text(value, limit) if value else None


def _required_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(f"{name} is required and must be a non-empty string")
    return _held_text(value, limit)


def _dedup_key(value: object, *, required: bool, action: str) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidEventError(f"{action} needs the dedup_key of the alert it acts on")
    return fit_dedup_key(value)


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.href, str) or not self.href.strip():
            raise InvalidEventError("a link needs an href")

    def to_json(self) -> dict[str, str]:
        return {"href": self.href} if self.text is None else {"href": self.href, "text": self.text}


@dataclass(frozen=True, slots=True)
class Image:
    src: str
    href: str | None = None
    alt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.src, str) or not self.src.lower().startswith("https://"):
            raise InvalidEventError(f"image src must be an https:// URL, got {self.src!r}")

    def to_json(self) -> dict[str, str]:
        body = {"src": self.src}
        if self.href is not None:
            body["href"] = self.href
        if self.alt is not None:
            body["alt"] = self.alt
        return body


LinkLike = Link | Mapping[str, Any] | str
ImageLike = Image | Mapping[str, Any] | str


def _links(values: Iterable[LinkLike] | None) -> tuple[Link, ...]:
    if not values:
        return ()
    out = []
    for value in values:
        if isinstance(value, Link):
            out.append(value)
        elif isinstance(value, str):
            out.append(Link(value))
        elif isinstance(value, Mapping):
            out.append(Link(value.get("href"), value.get("text")))  # type: ignore[arg-type]
        else:
            raise InvalidEventError(f"a link must be a Link, a URL or a mapping, not {value!r}")
    return tuple(out)


def _images(values: Iterable[ImageLike] | None) -> tuple[Image, ...]:
    if not values:
        return ()
    out = []
    for value in values:
        if isinstance(value, Image):
            out.append(value)
        elif isinstance(value, str):
            out.append(Image(value))
        elif isinstance(value, Mapping):
            out.append(Image(value.get("src"), value.get("href"), value.get("alt")))  # type: ignore[arg-type]
        else:
            raise InvalidEventError(f"an image must be an Image, a URL or a mapping, not {value!r}")
    return tuple(out)


@dataclass(frozen=True, slots=True, init=False)
class TriggerEvent:
    """Opens an alert, or updates the open alert with the same dedup key.

    Severity may be given as a plain string, links and images as URLs or mappings;
    everything is validated and normalised here, at the call site.
    """

    summary: str
    severity: Severity
    source: str
    dedup_key: str | None
    component: str | None
    group: str | None
    class_: str | None
    custom_details: Any
    images: tuple[Image, ...]
    links: tuple[Link, ...]
    timestamp: str | None
    client: str | None
    client_url: str | None

    action: ClassVar[Literal["trigger"]] = "trigger"
    path: ClassVar[str] = ENQUEUE_PATH

    def __init__(
        self,
        summary: str,
        severity: Severity | str,
        source: str,
        *,
        dedup_key: str | None = None,
        component: str | None = None,
        group: str | None = None,
        class_: str | None = None,
        custom_details: Any = None,
        images: Iterable[ImageLike] | None = None,
        links: Iterable[LinkLike] | None = None,
        timestamp: datetime | str | None = None,
        client: str | None = None,
        client_url: str | None = None,
    ) -> None:
        fix = object.__setattr__
        fix(self, "summary", _required_text("summary", summary, MAX_SUMMARY))
        fix(self, "severity", Severity.parse(severity))
        fix(self, "source", _required_text("source", source, MAX_FIELD))
        fix(self, "dedup_key", _dedup_key(dedup_key, required=False, action="trigger"))
        fix(self, "component", _optional_text("component", component))
        fix(self, "group", _optional_text("group", group))
        fix(self, "class_", _optional_text("class", class_))
        fix(self, "custom_details", custom_details)
        fix(self, "images", _images(images))
        fix(self, "links", _links(links))
        fix(self, "timestamp", None if timestamp is None else format_timestamp(timestamp))
        fix(self, "client", _optional_text("client", client))
        fix(self, "client_url", _optional_text("client_url", client_url))

    def with_dedup_key(self, dedup_key: str) -> TriggerEvent:
        return replace(self, dedup_key=dedup_key)

    @property
    def priority(self) -> int:
        return self.severity.rank


@dataclass(frozen=True, slots=True)
class AcknowledgeEvent:
    """Acknowledges the open alert with this dedup key (dropped by PagerDuty if none is open)."""

    dedup_key: str

    action: ClassVar[Literal["acknowledge"]] = "acknowledge"
    path: ClassVar[str] = ENQUEUE_PATH
    # Losing an acknowledge re-pages a responder who is already working on it.
    priority: ClassVar[int] = _SEVERITY_RANK[Severity.ERROR]

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "dedup_key", _dedup_key(self.dedup_key, required=True, action="acknowledge")
        )


@dataclass(frozen=True, slots=True)
class ResolveEvent:
    """Resolves the open alert with this dedup key (dropped by PagerDuty if none is open)."""

    dedup_key: str

    action: ClassVar[Literal["resolve"]] = "resolve"
    path: ClassVar[str] = ENQUEUE_PATH
    # A lost resolve leaves an incident open and paging: as urgent as an error.
    priority: ClassVar[int] = _SEVERITY_RANK[Severity.ERROR]

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "dedup_key", _dedup_key(self.dedup_key, required=True, action="resolve")
        )


@dataclass(frozen=True, slots=True, init=False)
class ChangeEvent:
    """A change event (deploy, config change): recorded by PagerDuty, pages nobody."""

    summary: str
    source: str | None
    timestamp: str | None
    custom_details: Any
    links: tuple[Link, ...]
    images: tuple[Image, ...]

    action: ClassVar[Literal["change"]] = "change"
    path: ClassVar[str] = CHANGE_PATH
    priority: ClassVar[int] = 0
    dedup_key: ClassVar[None] = None

    def __init__(
        self,
        summary: str,
        *,
        source: str | None = None,
        timestamp: datetime | str | None = None,
        custom_details: Any = None,
        links: Iterable[LinkLike] | None = None,
        images: Iterable[ImageLike] | None = None,
    ) -> None:
        fix = object.__setattr__
        fix(self, "summary", _required_text("summary", summary, MAX_SUMMARY))
        fix(self, "source", _optional_text("source", source))
        fix(self, "timestamp", None if timestamp is None else format_timestamp(timestamp))
        fix(self, "custom_details", custom_details)
        fix(self, "links", _links(links))
        fix(self, "images", _images(images))


Event = TriggerEvent | AcknowledgeEvent | ResolveEvent | ChangeEvent


def _details(
    value: Any,
    scrubber: Scrubber | None,
    *,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> JSONValue:
    details: JSONValue
    if scrubber is None:
        details = to_jsonable(value, max_string=max_string, max_items=max_items)
    else:
        # The scrubber's own encoding scrubs each string before the encoder cuts it.
        details = scrubber.to_jsonable(value, max_string=max_string, max_items=max_items)
    if not isinstance(details, dict):
        details = {"details": details}
    return details


def _body(event: Event, routing_key: str, scrubber: Scrubber | None) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": routing_key}
    if isinstance(event, AcknowledgeEvent | ResolveEvent):
        body["event_action"] = event.action
        body["dedup_key"] = event.dedup_key
        return body
    payload: dict[str, Any] = {"summary": _sent_text(event.summary, MAX_SUMMARY, scrubber)}
    if isinstance(event, TriggerEvent):
        body["event_action"] = "trigger"
        if event.dedup_key is not None:
            body["dedup_key"] = event.dedup_key
        payload["severity"] = event.severity.value
        payload["source"] = _sent_text(event.source, MAX_FIELD, scrubber)
        for key, value in (
            ("component", event.component),
            ("group", event.group),
            ("class", event.class_),
        ):
            if value is not None:
                payload[key] = _sent_text(value, MAX_FIELD, scrubber)
        if event.client is not None:
            body["client"] = _sent_text(event.client, MAX_FIELD, scrubber)
        if event.client_url is not None:
            # A URL the application chose to show is sent as given (redacting a signed
            # URL's signature would break it); only cut.
            body["client_url"] = truncate(event.client_url, MAX_FIELD)
    elif event.source is not None:
        payload["source"] = _sent_text(event.source, MAX_FIELD, scrubber)
    if event.timestamp is not None:
        payload["timestamp"] = event.timestamp
    if event.custom_details is not None:
        payload["custom_details"] = _details(event.custom_details, scrubber)
    body["payload"] = payload
    if event.images:
        body["images"] = [_labelled(image.to_json(), "alt", scrubber) for image in event.images]
    if event.links:
        body["links"] = [_labelled(link.to_json(), "text", scrubber) for link in event.links]
    return body


def _labelled(item: dict[str, str], label: str, scrubber: Scrubber | None) -> dict[str, str]:
    """A link's text or an image's alt is prose, scrubbed like any; the URLs are kept."""
    text = item.get(label)
    if isinstance(text, str):
        item[label] = _sent_text(_held_text(text, MAX_FIELD), MAX_FIELD, scrubber)
    return item


def _encode(body: Mapping[str, Any]) -> bytes:
    text = _JSON.encode(body)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate the constructors could not see (a dedup key, a URL, a custom
        # scrubber's output): in JSON text it can only be inside a string, so replacing
        # it keeps the JSON intact.
        return utf8_safe(text).encode("utf-8")


def encode_event(
    event: Event, routing_key: str, *, scrubber: Scrubber | None = DEFAULT_SCRUBBER
) -> bytes:
    """The JSON body to POST for ``event``: scrubbed, encoded, and at most 512 KB.

    An oversized body is shrunk in ``custom_details`` only (strings and lists cut,
    then the whole object replaced by a marked preview); summary, severity and source
    always survive. Links and images are trimmed only if that is still not enough.
    """
    body = _body(event, routing_key, scrubber)
    data = _encode(body)
    if len(data) <= MAX_BODY_BYTES:
        return data
    payload = body.get("payload", {})
    original_size = len(data)
    if "custom_details" in payload and isinstance(event, TriggerEvent | ChangeEvent):
        for max_string, max_items in ((4096, 200), (512, 50), (128, 10)):
            payload["custom_details"] = _details(
                event.custom_details, scrubber, max_string=max_string, max_items=max_items
            )
            payload["custom_details"][TRUNCATION_MARKER] = _marker(original_size)
            data = _encode(body)
            if len(data) <= MAX_BODY_BYTES:
                return data
        payload["custom_details"] = {TRUNCATION_MARKER: _marker(original_size)}
        room = MAX_BODY_BYTES - len(_encode(body)) - 64
        if room > 0:
            preview = dumps(_details(event.custom_details, scrubber, max_string=4096))
            payload["custom_details"]["preview"] = _fit_utf8(preview, room)
        data = _encode(body)
    while len(data) > MAX_BODY_BYTES and (body.get("links") or body.get("images")):
        for name in ("links", "images"):
            if body.get(name):
                body[name] = body[name][: len(body[name]) // 2]
        data = _encode(body)
    return data


def _marker(original_size: int) -> str:
    return (
        f"custom_details shrunk: the event was {original_size} bytes, "
        f"over PagerDuty's {MAX_BODY_BYTES}-byte limit"
    )


def _fit_utf8(text: str, max_bytes: int) -> str:
    """Cut ``text`` so its JSON-escaped UTF-8 form stays within ``max_bytes``."""
    while len(json.dumps(text, ensure_ascii=False).encode("utf-8")) > max_bytes:
        text = text[: max(0, int(len(text) * 0.8) - 1)]
    return text + _ELLIPSIS if text else text
