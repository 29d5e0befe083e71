"""A PagerDuty webhook endpoint for Django: a CSRF-exempt view and its URL include.

::

    # urls.py
    path("pagerduty/webhooks", include("pd_integrations.django.webhooks"))

    # anywhere imported at startup (an AppConfig.ready, a signals module...)
    from pd_integrations.django.webhooks import receiver

    @receiver.on("incident.acknowledged")
    def acknowledged(event: WebhookEvent) -> None: ...

The secrets come from ``PAGERDUTY["WEBHOOK_SECRET"]`` (one, or a list while rotating),
else the ``PAGERDUTY_WEBHOOK_SECRET`` environment variable; they are read per request,
so ``override_settings`` applies. Background handlers run when the server closes the
response, after its body was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from pd_integrations.webhooks.receiver import WebhookReceiver, WebhookResult

from . import conf

__all__ = ["app_name", "receiver", "settings_secrets", "urlpatterns", "webhook_view"]

_CHUNK = 64 * 1024


def settings_secrets() -> tuple[str, ...]:
    """The secrets in effect: ``PAGERDUTY["WEBHOOK_SECRET"]``, else the environment."""
    return conf.get().webhook_secret


#: The receiver the included URL serves: register your handlers on it.
receiver = WebhookReceiver(settings_secrets)


def webhook_view(chosen: WebhookReceiver) -> Callable[[HttpRequest], HttpResponse]:
    """A CSRF-exempt ``POST`` view for ``chosen``'s deliveries (for a receiver of your own)."""

    @csrf_exempt
    def pagerduty_webhook(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if chosen.too_large(request.META.get("CONTENT_LENGTH") or None):
            return _response(chosen.payload_too_large())
        # request.read(), not request.body: the body is read in chunks, and only up
        # to the cap (DATA_UPLOAD_MAX_MEMORY_SIZE does not apply to it).
        body = chosen.read_body(_chunks(request))
        if body is None:
            return _response(chosen.payload_too_large())
        return _response(chosen.handle(body, request.headers), request)

    return pagerduty_webhook


def _chunks(request: HttpRequest) -> Iterator[bytes]:
    while chunk := request.read(_CHUNK):
        yield chunk


class _WebhookResponse(HttpResponse):
    """Runs the background handlers once the server closes it, after the body went out."""

    def __init__(self, result: WebhookResult, *, own_thread: bool) -> None:
        super().__init__(result.content, status=result.status, content_type=result.media_type)
        self.background = result.background
        self.own_thread = own_thread

    def close(self) -> None:
        try:
            super().close()
        finally:
            work, self.background = self.background, None
            if work is not None and self.own_thread:
                # Under ASGI, close() runs on the thread all sync views share: slow
                # handlers there would hold up every other request.
                threading.Thread(target=work.run, name="pd-webhook-background").start()
            elif work is not None:
                work.run()  # WSGI: the server's thread for this request, now done


def _response(result: WebhookResult, request: HttpRequest | None = None) -> HttpResponse:
    if result.background is None:
        return HttpResponse(result.content, status=result.status, content_type=result.media_type)
    return _WebhookResponse(result, own_thread=isinstance(request, ASGIRequest))


pagerduty_webhook = webhook_view(receiver)

app_name = "pagerduty_webhooks"
urlpatterns = [path("", pagerduty_webhook, name="webhook")]
