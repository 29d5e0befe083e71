"""Views for the Django adapter's tests: healthy, failing, slow and streaming ones.

The slow and streaming views take their time with :func:`.timing.spend`, on the
monitor's fake clock only: they never sleep.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)

from .timing import spend

STREAM_CHUNKS = (b"first,", b"second,", b"third")


class OrderLookupError(LookupError):
    pass


def hello(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"Hello, world", content_type="text/plain")
    response["X-Custom"] = "kept"
    response.set_cookie("visited", "yes")
    return response


def order(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"order": int(pk)})


def _find_order(pk: int) -> dict[str, int]:
    raise OrderLookupError(f"order {pk} is gone")


def _milliseconds(request: HttpRequest, default: str = "0") -> float:
    return int(request.GET.get("ms", default)) / 1000


def fail_order(request: HttpRequest, pk: int) -> HttpResponse:
    """Served by two URL patterns: one bug, one incident; fails after ``?ms=``."""
    spend(_milliseconds(request))
    _find_order(pk)
    return HttpResponse()


def _lookup(table: dict[str, int], name: str) -> int:
    return table[name]


def _ratio(total: int, count: int) -> float:
    return total / count


def boom(request: HttpRequest) -> HttpResponse:
    """Two different bugs behind one URL, chosen by ``?kind=``."""
    if request.GET.get("kind") == "zero":
        return HttpResponse(str(_ratio(1, 0)))
    return HttpResponse(str(_lookup({}, "missing")))


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("not yours")


def suspicious(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation("tampered")


def bad_request(request: HttpRequest) -> HttpResponse:
    raise BadRequest("malformed")


def status(request: HttpRequest, code: int) -> HttpResponse:
    """A response with any status, without an exception."""
    return HttpResponse(f"status {code}".encode(), status=int(code))


def slow(request: HttpRequest) -> HttpResponse:
    spend(_milliseconds(request, "100"))
    return HttpResponse(b"finally")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Returns at once; the body takes ``?ms=`` milliseconds per chunk."""
    delay = _milliseconds(request)

    def chunks() -> Iterator[bytes]:
        for chunk in STREAM_CHUNKS:
            spend(delay)
            yield chunk

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    delay = _milliseconds(request)

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in STREAM_CHUNKS:
            spend(delay)
            yield chunk

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def _broken_rows() -> Iterator[bytes]:
    yield b"row 1\n"
    raise ValueError("row 2 is corrupt")


def stream_fail(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_broken_rows(), content_type="text/plain")


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(io.BytesIO(b"file body" * 100), content_type="application/octet-stream")


async def async_hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, async world")


async def _async_charge(amount: int) -> int:
    raise ConnectionError(f"payment gateway refused {amount}")


async def async_boom(request: HttpRequest) -> HttpResponse:
    await _async_charge(42)
    return HttpResponse()


async def async_slow(request: HttpRequest) -> HttpResponse:
    spend(_milliseconds(request, "100"))
    return HttpResponse(b"finally")


def json_server_error(request: HttpRequest) -> JsonResponse:
    """A ``handler500`` answering JSON, as a Gin recovery middleware would."""
    return JsonResponse({"error": "internal server error"}, status=500)


def created_slowly(request: HttpRequest) -> HttpResponse:
    spend(0.1)
    return HttpResponse(b"created", status=201)
