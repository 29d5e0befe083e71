from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("orders.urls")),
    path("healthz/", include("pd_integrations.django.urls")),
]
