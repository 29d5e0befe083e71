"""The shop's data, in memory: this example needs no database."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

LOW_STOCK = 5


@dataclass
class Product:
    id: int
    name: str
    price_cents: int
    stock: int


@dataclass(frozen=True)
class Order:
    id: int
    product_id: int
    quantity: int
    country: str


# VAT per destination country. "US" orders were enabled last week; nobody added a rate.
TAX_RATES = {"DE": 0.19, "FR": 0.20, "NL": 0.21}

PRODUCTS: dict[int, Product] = {}
ORDERS: dict[int, Order] = {}
_ids = itertools.count()
_lock = threading.Lock()


def reset() -> None:
    """Back to the seed data (the tests start each test from it)."""
    global _ids
    with _lock:
        PRODUCTS.clear()
        PRODUCTS.update(
            {
                1: Product(1, "Coffee beans, 1 kg", 2490, 40),
                2: Product(2, "Hand grinder", 6900, 12),
                3: Product(3, "Pour-over kettle", 4500, 6),
            }
        )
        ORDERS.clear()
        ORDERS.update(
            {
                1: Order(1, product_id=1, quantity=2, country="DE"),
                2: Order(2, product_id=2, quantity=1, country="US"),
            }
        )
        _ids = itertools.count(3)


def place_order(product: Product, quantity: int, country: str) -> Order:
    with _lock:
        if quantity > product.stock:
            raise ValueError(f"only {product.stock} left")
        product.stock -= quantity
        order = Order(next(_ids), product.id, quantity, country)
        ORDERS[order.id] = order
        return order


def order_total_cents(order: Order) -> int:
    product = PRODUCTS[order.product_id]
    net = product.price_cents * order.quantity
    return round(net * (1 + TAX_RATES[order.country]))


reset()
