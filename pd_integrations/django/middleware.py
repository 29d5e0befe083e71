"""``PagerDutyMiddleware``: times every request and reports how it ended.

It is sync and async capable, so Django never adapts it with a thread hop: under ASGI
it runs on the event loop, under WSGI in the request's thread. A healthy request costs
a clock read, a ``try`` and the monitor's couple of comparisons; nothing is built.

Timing ends when the response is handed back, which for an ``HttpResponse`` is after
its body exists. A ``StreamingHttpResponse`` is timed until its content has been
consumed (or the server closed it), by wrapping ``streaming_content`` in a generator
that yields the very same chunks. A ``FileResponse`` backed by a file keeps its file
object, so servers can still use ``wsgi.file_wrapper`` (sendfile): its timing ends
when it is returned. Work done after the response, in ``request_finished`` receivers
or ``transaction.on_commit`` callbacks, is never counted.

Exceptions turned into 500 responses are reported by the ``got_request_exception``
receiver (see :mod:`.receivers`); the middleware hands the same exception to the
monitor, so the request is reported once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeGuard, cast

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from pd_integrations.monitor import RequestMonitor

from . import receivers, views
from .describe import describe, stashed_exception
from .runtime import current

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

# Django's own status for an exception: what the client gets when one escapes a stream.
ESCAPED_STATUS = 500


class PagerDutyMiddleware:
    """Exception, handled-5xx and slow-request alerts for every request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Typed once here rather than cast on every request.
        self._sync = cast(GetResponse, get_response)
        self._async = cast(AsyncGetResponse, get_response)
        # Also when the app is missing from INSTALLED_APPS: exceptions must still alert.
        receivers.connect()

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        get_response = self._sync
        runtime = current()
        if (
            runtime.settings.health_path is not None
            and request.path == runtime.settings.health_path
        ):
            return async_to_sync(views.health)(request)
        monitor = runtime.monitor
        if monitor is None:
            return get_response(request)
        start = monitor.clock()
        crumbs = monitor.begin_request(request.META)
        try:
            try:
                response = get_response(request)
            except Exception as exc:  # only with DEBUG_PROPAGATE_EXCEPTIONS: Django converts
                monitor.request_finished(lambda: describe(request), ESCAPED_STATUS, start, exc)
                raise
            return _finished(monitor, request, response, start)
        finally:
            monitor.end_request(crumbs)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response = self._async
        runtime = current()
        if (
            runtime.settings.health_path is not None
            and request.path == runtime.settings.health_path
        ):
            return await views.health(request)
        monitor = runtime.monitor
        if monitor is None:
            return await get_response(request)
        start = monitor.clock()
        crumbs = monitor.begin_request(request.META)
        try:
            try:
                response = await get_response(request)
            except Exception as exc:
                monitor.request_finished(lambda: describe(request), ESCAPED_STATUS, start, exc)
                raise
            return _finished(monitor, request, response, start)
        finally:
            monitor.end_request(crumbs)


def _finished(
    monitor: RequestMonitor, request: HttpRequest, response: HttpResponseBase, start: float
) -> HttpResponseBase:
    status = response.status_code
    if response.streaming and _wrappable_stream(response):
        _time_stream(monitor, request, response, start)
        return response
    # The exception the signal receiver reported, if any: reported once, and not slow.
    exc = stashed_exception(request) if status >= 500 else None
    monitor.request_finished(lambda: describe(request), status, start, exc)
    return response


def _wrappable_stream(response: HttpResponseBase) -> TypeGuard[StreamingHttpResponse]:
    """A stream whose end can be seen; a file is left for the server's sendfile."""
    if not isinstance(response, StreamingHttpResponse):
        return False
    return not (isinstance(response, FileResponse) and response.file_to_stream is not None)


def _time_stream(
    monitor: RequestMonitor, request: HttpRequest, response: StreamingHttpResponse, start: float
) -> None:
    status = response.status_code
    if response.is_async:
        content = cast(AsyncIterator[bytes], response.streaming_content)
        response.streaming_content = _timed_async(content, monitor, request, status, start)
    else:
        chunks = cast(Iterator[bytes], response.streaming_content)
        response.streaming_content = _timed(chunks, monitor, request, status, start)


def _timed(
    content: Iterator[bytes],
    monitor: RequestMonitor,
    request: HttpRequest,
    status: int,
    start: float,
) -> Iterator[bytes]:
    # Runs its `finally` when the last chunk was taken, when the content raised, or when
    # the server closed the response early (the client went away).
    exc: Exception | None = None
    try:
        yield from content
    except Exception as error:
        exc, status = error, ESCAPED_STATUS
        raise
    finally:
        monitor.request_finished(lambda: describe(request), status, start, exc)


async def _timed_async(
    content: AsyncIterator[bytes],
    monitor: RequestMonitor,
    request: HttpRequest,
    status: int,
    start: float,
) -> AsyncIterator[bytes]:
    exc: Exception | None = None
    try:
        async for chunk in content:
            yield chunk
    except Exception as error:
        exc, status = error, ESCAPED_STATUS
        raise
    finally:
        monitor.request_finished(lambda: describe(request), status, start, exc)
