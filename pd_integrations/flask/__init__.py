"""PagerDuty alerting for Flask apps: the :class:`PagerDuty` extension.

- :mod:`.extension`: ``PagerDuty(app)`` / ``init_app(app)``, request timing, health endpoint;
- :mod:`.state`: what the extension keeps per app (``app.extensions["pagerduty"]``);
- :mod:`.cli`: ``flask pagerduty test|check``;
- :mod:`.webhooks`: the webhook blueprint.
"""

from __future__ import annotations

from .extension import *  # noqa: F403 - the extension's names are this package's API
from .extension import __all__ as __all__
