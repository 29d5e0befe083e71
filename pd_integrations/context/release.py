"""The running release: read, detected, stamped on alerts, announced once.

:data:`RELEASE_ENV_VARS` are the variables CI systems and hosting platforms set to the
commit or version being run, most specific first. The ``release`` setting
(``PAGERDUTY_RELEASE``) wins over all of them; the settings model reads them after it.

:func:`announce_release` sends one change event per release per state backend: with
in-memory state once per process, with Redis state once for every process sharing it
(a ``SET NX`` with a TTL), so N workers starting the same release send one event. It
never raises: a failed announcement is logged, never an error of the application.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pd_integrations.alerts import AlertManager
    from pd_integrations.events import LinkLike

_log = logging.getLogger("pd_integrations.context.release")

RELEASE_ENV_VARS: Final[tuple[tuple[str, str], ...]] = (
    ("SOURCE_VERSION", "Heroku (build), Scalingo"),
    ("HEROKU_SLUG_COMMIT", "Heroku (dyno metadata)"),
    ("RENDER_GIT_COMMIT", "Render"),
    ("RAILWAY_GIT_COMMIT_SHA", "Railway"),
    ("VERCEL_GIT_COMMIT_SHA", "Vercel"),
    ("CF_PAGES_COMMIT_SHA", "Cloudflare Pages"),
    ("COMMIT_REF", "Netlify"),
    ("K_REVISION", "Google Cloud Run, Knative"),
    ("GAE_VERSION", "Google App Engine"),
    ("FLY_IMAGE_REF", "Fly.io"),
    ("CODEBUILD_RESOLVED_SOURCE_VERSION", "AWS CodeBuild"),
    ("GITHUB_SHA", "GitHub Actions"),
    ("CI_COMMIT_SHA", "GitLab CI"),
    ("CIRCLE_SHA1", "CircleCI"),
    ("BITBUCKET_COMMIT", "Bitbucket Pipelines"),
    ("BUILDKITE_COMMIT", "Buildkite"),
    ("TRAVIS_COMMIT", "Travis CI"),
    ("BUILD_SOURCEVERSION", "Azure Pipelines"),
    ("DRONE_COMMIT_SHA", "Drone"),
    ("GIT_COMMIT", "Jenkins (Git plugin), generic"),
)
"""``(variable, platform)`` pairs, in the order they are read."""

RELEASE_VARIABLES: Final[tuple[str, ...]] = tuple(name for name, _ in RELEASE_ENV_VARS)
ANNOUNCE_TTL: Final = 30 * 24 * 3600.0  # a release restarted a month later is news again
MAX_RELEASE = 200

_announced: set[tuple[str, str]] = set()
_announced_lock = threading.Lock()


def detect_release(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``(release, variable)`` from the first of :data:`RELEASE_ENV_VARS` set, else ``None``."""
    for name in RELEASE_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value[:MAX_RELEASE], name
    return None


def announce_release(
    alerts: AlertManager,
    release: str,
    *,
    links: Iterable[LinkLike] | None = None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """Send the change event "Release <release> started", once per release per state.

    Returns whether this call sent it. A disabled manager sends nothing.
    """
    try:
        if not alerts.enabled or not _first_start(alerts, release):
            return False
        shown: dict[str, Any] = {"release": release}
        shown.update(details or {})
        alerts.change(f"Release {release} started", custom_details=shown, links=links)
        return True
    except Exception:
        _log.exception("could not announce release %r to PagerDuty", release)
        return False


def _first_start(alerts: AlertManager, release: str) -> bool:
    state = alerts.state
    redis = getattr(state, "redis", None)
    namespace = getattr(state, "namespace", None)
    if redis is not None and isinstance(namespace, str):
        try:
            # One key per release: the first process to set it announces, the others
            # (workers of the same deploy, restarts) find it set.
            key = f"{namespace}:release:{release}"
            return bool(redis.set(key, "1", nx=True, ex=int(ANNOUNCE_TTL)))
        except Exception as error:
            # Redis down: every process may announce. A duplicate change event pages
            # nobody; a missing one hides the deploy from the responder.
            _log.warning("release announcement not shared through Redis: %s", error)
    with _announced_lock:
        dispatcher = alerts.dispatcher
        marker = (dispatcher.client.routing_key if dispatcher else "", release)
        if marker in _announced:
            return False
        _announced.add(marker)
        return True
