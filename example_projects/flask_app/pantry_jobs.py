"""Pantry's background jobs, run by an RQ worker that pages on failures.

Start a worker next to the app (from this directory)::

    rq worker -w pd_integrations.rq.Worker --url "$RQ_REDIS_URL" pantry

``POST /jobs/restock`` enqueues :func:`restock`; ``{"supplier": "closed"}`` makes it fail
for good after two retries: one alert, and the next successful restock resolves it.
"""

from __future__ import annotations

QUEUE = "pantry"
RETRIES = 2


class SupplierClosedError(Exception):
    """The supplier did not take the order."""


def restock(product_id: int, quantity: int, supplier: str = "open") -> dict[str, int]:
    if supplier == "closed":
        raise SupplierClosedError(f"supplier closed: cannot restock product {product_id}")
    return {"product_id": product_id, "ordered": quantity}
