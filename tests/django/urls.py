from __future__ import annotations

from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("", views.hello),
    path("orders/<int:pk>/", views.order),
    path("orders/<int:pk>/fail/", views.fail_order),
    path("shop/orders/<int:pk>/fail/", views.fail_order),
    re_path(r"^legacy/orders/(?P<pk>[0-9]+)/fail/$", views.fail_order),
    path("boom/", views.boom),
    path("missing/", views.missing),
    path("forbidden/", views.forbidden),
    path("suspicious/", views.suspicious),
    path("bad-request/", views.bad_request),
    path("status/<int:code>/", views.status),
    path("slow/", views.slow),
    path("stream/", views.stream),
    path("stream-async/", views.stream_async),
    path("stream-fail/", views.stream_fail),
    path("file/", views.file),
    path("async/", views.async_hello),
    path("async/boom/", views.async_boom),
    path("async/slow/", views.async_slow),
    path("explode-in-middleware/", views.hello),
    path("healthz/", include("pd_integrations.django.urls")),
    path("pagerduty/webhooks", include("pd_integrations.django.webhooks")),
]
