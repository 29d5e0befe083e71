"""The tests' URLs with a JSON ``handler500``."""

from __future__ import annotations

from django.urls import path

from . import views
from .urls import urlpatterns as base_patterns

handler500 = "tests.django.views.json_server_error"
urlpatterns = [*base_patterns, path("created/", views.created_slowly)]
