"""The shop's views: a catalogue, orders, a receipt with a bug, a slow report, an export."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)

from pd_integrations.django import alert_manager

from .catalog import LOW_STOCK, ORDERS, PRODUCTS, order_total_cents, place_order
from .inventory import SERVICE, InventoryUnavailable


def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "shop": "pdexample",
            "links": ["/products/", "/orders/", "/reports/sales/", "/export/orders.csv"],
        }
    )


def products(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"products": [asdict(p) for p in PRODUCTS.values()]})


def product(request: HttpRequest, pk: int) -> JsonResponse:
    found = PRODUCTS.get(pk)
    if found is None:
        raise Http404("no such product")  # a 404 never pages
    return JsonResponse(asdict(found))


def create_order(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        data = json.loads(request.body)
        item = PRODUCTS[int(data["product"])]
        quantity = int(data.get("quantity", 1))
        country = str(data["country"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "expected product, quantity and country"}, status=400)
    try:
        SERVICE.reserve(item.id, quantity)
    except InventoryUnavailable:
        # Handled: the client may retry. The "inventory" health check pages for it.
        return JsonResponse({"error": "inventory unavailable, try again"}, status=503)
    try:
        order = place_order(item, quantity, country)
    except ValueError as error:
        return JsonResponse({"error": str(error)}, status=409)
    if item.stock < LOW_STOCK:
        alerts = alert_manager()
        if alerts is not None:
            # One alert per product, resolved by itself once it stops recurring.
            alerts.warning(
                f"Low stock: {item.name} ({item.stock} left)",
                {"product_id": item.id, "stock": item.stock},
                alert_type="low_stock",
                identifier=str(item.id),
            )
    return JsonResponse(asdict(order), status=201)


def receipt(request: HttpRequest, pk: int) -> JsonResponse:
    order = ORDERS.get(pk)
    if order is None:
        raise Http404("no such order")
    # The bug: TAX_RATES has no "US" entry, so US orders raise KeyError -> 500 + alert.
    return JsonResponse({"order": pk, "total_cents": order_total_cents(order)})


def sales_report(request: HttpRequest) -> JsonResponse:
    # Stands in for a heavy aggregate query; ?seconds= makes it as slow as you like.
    time.sleep(float(request.GET.get("seconds", "1.5")))
    sold = sum(order.quantity for order in ORDERS.values())
    return JsonResponse({"orders": len(ORDERS), "items_sold": sold})


def export_orders(request: HttpRequest) -> StreamingHttpResponse:
    delay = float(request.GET.get("delay", "0"))

    def rows() -> Iterator[str]:
        yield "id,product,quantity,country\n"
        for order in list(ORDERS.values()):
            time.sleep(delay)
            yield f"{order.id},{order.product_id},{order.quantity},{order.country}\n"

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response
