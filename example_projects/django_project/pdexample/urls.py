from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("pdexample.shop.urls")),
    path("healthz/", include("pd_integrations.django.urls")),
    # PagerDuty's webhooks (secret: PAGERDUTY_WEBHOOK_SECRET); see shop/webhooks.py.
    path("pagerduty/webhooks", include("pd_integrations.django.webhooks")),
]
