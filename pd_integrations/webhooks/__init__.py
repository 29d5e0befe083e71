"""PagerDuty v3 webhooks, whatever the framework.

- :mod:`.signature`: signing and verifying a delivery (``X-PagerDuty-Signature``);
- :mod:`.events`: the typed events a delivery carries;
- :mod:`.handlers`: what the receiver applies before the user's handlers (open alerts
  resolved or acknowledged in PagerDuty);
- :mod:`.receiver`: :class:`WebhookReceiver`, which every framework endpoint hands the
  raw body to.
"""

from __future__ import annotations

from .receiver import *  # noqa: F403 - the receiver's names are this package's API
from .receiver import __all__ as __all__
