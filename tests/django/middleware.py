"""Middleware that fails, to show exceptions outside the views are reported once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase

EXPLODE_PATH = "/explode-in-middleware/"

SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class MiddlewareError(RuntimeError):
    pass


class _Exploding:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        self.before(request)
        response = cast(SyncGetResponse, self.get_response)(request)
        self.after(request)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        self.before(request)
        response = await cast(AsyncGetResponse, self.get_response)(request)
        self.after(request)
        return response

    def before(self, request: HttpRequest) -> None:
        """Runs before the rest of the chain."""

    def after(self, request: HttpRequest) -> None:
        """Runs once the rest of the chain has answered."""


class InnerExplodingMiddleware(_Exploding):
    """Listed after PagerDutyMiddleware: raises before the view runs."""

    def before(self, request: HttpRequest) -> None:
        if request.path == EXPLODE_PATH:
            raise MiddlewareError("inner middleware failed")


class OuterExplodingMiddleware(_Exploding):
    """Listed before PagerDutyMiddleware: raises after it has seen a normal response."""

    def after(self, request: HttpRequest) -> None:
        if request.path == EXPLODE_PATH:
            raise MiddlewareError("outer middleware failed")
