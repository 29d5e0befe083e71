"""What the monitor is told about a Django request; built only when an alert fires."""

from __future__ import annotations

from functools import partial

from django.http import HttpRequest

from pd_integrations.monitor import RequestInfo

# Where the signal receiver leaves the exception it reported, so the middleware can pass
# it on and the request is not reported a second time (as a handled 5xx or as slow).
EXCEPTION_ATTR = "_pd_integrations_exception"


def route_template(route: str) -> str:
    """``orders/<int:pk>/`` -> ``/orders/<int:pk>/``; a ``re_path`` loses its anchors."""
    route = route.removeprefix("^")
    if route.endswith(r"\Z"):
        route = route[:-2]
    elif route.endswith("$") and not route.endswith(r"\$"):
        route = route[:-1]
    return "/" + route.lstrip("/")


def describe(request: HttpRequest) -> RequestInfo:
    """The route template from ``resolver_match``; ``None`` when no URL pattern matched."""
    match = request.resolver_match
    return RequestInfo(
        method=request.method or "GET",
        route=route_template(match.route) if match is not None else None,
        path=request.path,
        # The monitor keeps only the harmless headers (and finds X-Request-ID and
        # User-Agent in them); the scrubber still runs over what it keeps.
        headers=request.headers,
        client_ip=request.META.get("REMOTE_ADDR"),
        # Set by AuthenticationMiddleware; a lazy object read only with send_user.
        user=partial(getattr, request, "user", None),
    )


def stash_exception(request: HttpRequest, exc: BaseException) -> None:
    setattr(request, EXCEPTION_ATTR, exc)


def stashed_exception(request: HttpRequest) -> BaseException | None:
    exc = getattr(request, EXCEPTION_ATTR, None)
    return exc if isinstance(exc, BaseException) else None
