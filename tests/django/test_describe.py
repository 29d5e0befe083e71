"""Route templates and request descriptions."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import resolve

from pd_integrations.django.describe import describe, route_template


@pytest.mark.parametrize(
    ("route", "template"),
    [
        ("", "/"),
        ("orders/<int:pk>/", "/orders/<int:pk>/"),
        ("/already/", "/already/"),
        ("^legacy/(?P<pk>[0-9]+)/$", "/legacy/(?P<pk>[0-9]+)/"),
        (r"^exact\Z", "/exact"),
        (r"^price/\$$", r"/price/\$"),
        (r"^dollar\$", r"/dollar\$"),
    ],
)
def test_route_template(route: str, template: str) -> None:
    assert route_template(route) == template


def test_describe_a_resolved_request(rf: RequestFactory) -> None:
    request = rf.post(
        "/orders/12/?secret=1",
        HTTP_X_REQUEST_ID="abc",
        REMOTE_ADDR="10.1.2.3",
    )
    request.resolver_match = resolve("/orders/12/")

    info = describe(request)

    assert info.method == "POST"
    assert info.route == "/orders/<int:pk>/"
    assert info.path == "/orders/12/"
    assert info.client_ip == "10.1.2.3"
    assert info.headers is not None
    assert dict(info.headers)["X-Request-Id"] == "abc"


def test_describe_an_unresolved_request(rf: RequestFactory) -> None:
    info = describe(rf.get("/nowhere/"))
    assert info.route is None
    assert info.path == "/nowhere/"
