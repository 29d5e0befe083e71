from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("orders/<int:pk>/item-price/", views.item_price),
    path("maintenance/", views.maintenance),
]
