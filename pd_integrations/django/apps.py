"""The app configuration: ``INSTALLED_APPS += ["pd_integrations.django"]``."""

from __future__ import annotations

from django.apps import AppConfig


class PagerDutyConfig(AppConfig):
    name = "pd_integrations.django"
    label = "pd_integrations"
    verbose_name = "PagerDuty alerting"

    def ready(self) -> None:
        # Only registrations here: the AlertManager and its threads are created by the
        # first request, so `migrate` and other commands start nothing.
        from pd_integrations.delivery import lifecycle

        from . import checks, receivers

        checks.register()
        receivers.connect()
        # Here, in the main thread: the AlertManager is made later, in a request's thread,
        # where no signal handler can be installed (runserver --noreload, plain WSGI).
        lifecycle.install()
