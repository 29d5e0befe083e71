"""A PagerDuty webhook endpoint for Flask: a blueprint.

::

    webhooks = WebhookReceiver(config_secrets)  # app.config, else the environment

    @webhooks.on("incident.resolved")
    def resolved(event: WebhookEvent) -> None: ...

    app.register_blueprint(webhook_blueprint(webhooks))  # POST /pagerduty/webhooks

The view reads the raw body from the WSGI stream, at most ``max_body_bytes`` of it.
Background handlers run from ``response.call_on_close``: the WSGI server calls them
once the whole response was sent; they get an app context (``current_app`` works),
not a request context.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from pd_integrations import environment
from pd_integrations.errors import ConfigurationError
from pd_integrations.webhooks.receiver import (
    DEFAULT_PATH,
    WebhookReceiver,
    WebhookResult,
    parse_secrets,
)

__all__ = ["CONFIG_KEY", "config_secrets", "webhook_blueprint"]

CONFIG_KEY = "PAGERDUTY_WEBHOOK_SECRET"
_CHUNK = 64 * 1024


def config_secrets() -> tuple[str, ...]:
    """The current app's secrets: ``app.config["PAGERDUTY_WEBHOOK_SECRET"]``, else the env.

    The setting is a string (several secrets separated by commas or whitespace) or a
    list; the fallback is the ``PAGERDUTY_WEBHOOK_SECRET`` environment variable.

    Pass it (uncalled) as ``WebhookReceiver(config_secrets)``: it is read per request.
    """
    value = current_app.config.get(CONFIG_KEY)
    if not value:
        value = environment.env_value(environment.WEBHOOK_SECRET_VAR)
    return parse_secrets(value)


def webhook_blueprint(
    receiver: WebhookReceiver | None = None,
    *,
    path: str = DEFAULT_PATH,
    name: str = "pagerduty_webhooks",
) -> Blueprint:
    """A blueprint with one ``POST`` view at ``path`` for ``receiver``'s deliveries.

    Without ``receiver``, one reading :func:`config_secrets` is made, with only the
    ready-made handlers: connect to the ``webhook_received`` signal to act on events.
    Registering the blueprint fails with :class:`ConfigurationError` when the app has
    no secret.
    """
    chosen = receiver if receiver is not None else WebhookReceiver(config_secrets)
    blueprint = Blueprint(name, __name__)

    def pagerduty_webhook() -> Response:
        if chosen.too_large(request.content_length):
            return _response(chosen.payload_too_large())
        body = chosen.read_body(_chunks(request.stream))
        if body is None:
            return _response(chosen.payload_too_large())
        return _response(chosen.handle(body, request.headers))

    blueprint.add_url_rule(path, "webhook", pagerduty_webhook, methods=["POST"])

    def check_secrets(state: BlueprintSetupState) -> None:
        app = state.app
        if not isinstance(app, Flask):
            return
        with app.app_context():
            if not chosen.secrets:
                raise ConfigurationError(
                    f"no PagerDuty webhook secret for {app.name!r}: set "
                    f'app.config["{CONFIG_KEY}"] or the {environment.WEBHOOK_SECRET_VAR} '
                    "environment variable"
                )

    blueprint.record_once(check_secrets)
    return blueprint


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _response(result: WebhookResult) -> Response:
    response = Response(result.content, status=result.status, mimetype=result.media_type)
    work = result.background
    if work is not None:
        # The request's app context is gone by then: give the handlers one of their own.
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def run_in_app_context() -> None:
            with app.app_context():
                work.run()

        response.call_on_close(run_in_app_context)
    return response
