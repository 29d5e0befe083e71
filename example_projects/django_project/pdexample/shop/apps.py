from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "pdexample.shop"
    label = "pdexample_shop"

    def ready(self) -> None:
        # Registers the shop's PagerDuty webhook handlers.
        from . import webhooks  # noqa: F401
