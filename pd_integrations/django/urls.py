"""``path("healthz/", include("pd_integrations.django.urls"))`` serves the health view."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "pagerduty"
urlpatterns = [path("", views.health, name="health")]
