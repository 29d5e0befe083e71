from __future__ import annotations

import signal

import pytest
from django.apps import apps

from pd_integrations.delivery import lifecycle


@pytest.mark.usefixtures("default_sigterm")
def test_ready_installs_the_sigterm_flush() -> None:
    # The AlertManager is built in a request's thread, where no handler can be installed:
    # without this, `runserver --noreload` and plain WSGI servers would lose the queue.
    apps.get_app_config("pd_integrations").ready()

    assert lifecycle.installed()


@pytest.mark.usefixtures("default_sigterm")
def test_ready_leaves_a_servers_own_sigterm_handler_alone() -> None:
    def server_handler(signum: int, frame: object) -> None:
        raise AssertionError("not called here")

    signal.signal(signal.SIGTERM, server_handler)

    apps.get_app_config("pd_integrations").ready()

    assert signal.getsignal(signal.SIGTERM) is server_handler
