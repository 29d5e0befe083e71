from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "pdexample.shop"
    label = "pdexample_shop"
