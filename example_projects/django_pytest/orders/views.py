"""The orders app's views; ``item_price`` has the bug the tests page on."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from .models import Order


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("mysite is up")


def item_price(request: HttpRequest, pk: int) -> JsonResponse:
    order = get_object_or_404(Order, pk=pk)
    # The bug: an order with no items (a cancelled one) divides by zero -> 500, one page.
    return JsonResponse({"order": order.pk, "item_cents": order.total_cents // order.items})


def maintenance(request: HttpRequest) -> HttpResponse:
    # Handled: a 503 the app chose to answer, which pages only if the settings ask.
    return HttpResponse("down for maintenance", status=503)
