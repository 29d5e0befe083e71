"""Keeps web pages away from the emulator: DNS rebinding and cross-site requests.

A page the developer happens to open in a browser must not be able to reset the
emulator, change its faults or resolve alerts. Two checks, before any routing:

- **Host**: every request must name the emulator by a loopback name (``localhost``,
  ``127.0.0.1``, ``[::1]``), by the host it was bound to, or by one of the extra
  ``allowed_hosts``; when bound to every interface (``0.0.0.0``, ``::``), any IP address
  is accepted too. The port must be the emulator's. A DNS-rebinding page reaches the
  emulator under the attacker's own domain name, so its requests fail here. A request
  without a ``Host`` header (HTTP/1.0) passes: browsers always send one.
- **Origin**: a state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) to
  the control API or the console whose ``Origin`` header is present must come from
  the emulator's own origin (its scheme and the host the request names). The Events
  API (``/v2/...``), which real clients call without an ``Origin``, and the REST API
  (``/rest/...``), which needs an ``Authorization`` header and so a CORS preflight the
  emulator never grants, are left to their own rules.

Refused requests get ``403 {"error": ...}`` and change nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from .api import Request, Response, json_response

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNGUARDED_PREFIXES = ("/v2", "/rest")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``(hostname, port)`` of a ``Host`` header (lower-case, IPv6 without brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = value.partition(":")
        port_text = port_text_or_empty if colon else None
        if ":" in port_text_or_empty:
            return None
    if not name:
        return None
    if port_text is None:
        return name, None
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        return None
    return name, int(port_text)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _unguarded(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in UNGUARDED_PREFIXES)


class RequestGuard:
    """Decides whether a request may reach the emulator's routes.

    :param bound_host: the host the server was asked to bind.
    :param port: the bound port (a callable: it is known only once listening).
    :param scheme: ``http`` or ``https``.
    :param allowed_hosts: further host names (or addresses) the emulator answers to,
        such as a container's service name.
    """

    def __init__(
        self,
        bound_host: str,
        port: Callable[[], int],
        scheme: str,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        names = set(LOOPBACK_NAMES)
        names.update(name.strip().strip("[]").lower() for name in allowed_hosts)
        self._any_ip = bound_host in WILDCARD_HOSTS
        if not self._any_ip:
            names.add(bound_host.strip("[]").lower())
        names.discard("")
        self._names = frozenset(names)
        self._port = port
        self._scheme = scheme

    def check(self, request: Request) -> Response | None:
        """A 403 for a request to refuse, ``None`` for one to serve."""
        host = request.headers.get("host")
        named: tuple[str, int | None] | None = None
        if host is not None:
            named = self._allowed_host(host)
            if named is None:
                return _forbidden(
                    f"Host {host.strip()[:100]!r} is not this emulator: use "
                    f"127.0.0.1, localhost or [::1] with port {self._port()}"
                )
        origin = request.headers.get("origin")
        if origin is None or request.method not in STATE_CHANGING or _unguarded(request.path):
            return None
        if not self._same_origin(origin, named):
            return _forbidden(
                f"cross-origin {request.method} refused: Origin {origin.strip()[:100]!r} "
                "is not this emulator"
            )
        return None

    def _allowed_host(self, host: str) -> tuple[str, int | None] | None:
        split = _split_host(host)
        if split is None:
            return None
        name, port = split
        if port is None:
            port = _DEFAULT_PORTS.get(self._scheme)
        if port != self._port():
            return None
        if name in self._names or (self._any_ip and _is_ip(name)):
            return name, port
        return None

    def _same_origin(self, origin: str, named: tuple[str, int | None] | None) -> bool:
        try:
            parts = urlsplit(origin.strip().lower())
            origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:  # "null", a garbled port
            return False
        if parts.scheme != self._scheme or not parts.hostname or origin_port != self._port():
            return False
        if parts.path or parts.query or parts.fragment or parts.username is not None:
            return False
        if named is not None:
            return parts.hostname == named[0]
        # No Host header to compare with: the origin must at least be a name of ours.
        return parts.hostname in self._names


def _forbidden(message: str) -> Response:
    return json_response(403, {"error": message})
