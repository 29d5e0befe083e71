from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("products/", views.products),
    path("products/<int:pk>/", views.product),
    path("orders/", views.create_order),
    path("orders/<int:pk>/receipt/", views.receipt),
    path("reports/sales/", views.sales_report),
    path("export/orders.csv", views.export_orders),
]
