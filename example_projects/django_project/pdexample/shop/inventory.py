"""A stand-in for the warehouse's inventory service, an external dependency."""

from __future__ import annotations


class InventoryUnavailable(ConnectionError):
    pass


class InventoryService:
    def __init__(self) -> None:
        self.online = True

    def ping(self) -> bool:
        return self.online

    def reserve(self, product_id: int, quantity: int) -> None:
        if not self.online:
            raise InventoryUnavailable("inventory service is not answering")


SERVICE = InventoryService()
