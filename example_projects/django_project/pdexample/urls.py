from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("pdexample.shop.urls")),
    path("healthz/", include("pd_integrations.django.urls")),
]
