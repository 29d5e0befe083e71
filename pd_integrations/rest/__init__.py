"""PagerDuty REST API v2 clients: incidents, notes, services, maintenance windows,
on-call, users.

:class:`RestClient` blocks and :class:`AsyncRestClient` awaits. Both run the same
request builders (:mod:`.operations`) over one sans-IO core (:mod:`.core`), the same
pager (:mod:`.pagination`) and the same retry decisions (:mod:`.retry`); only the few
lines that do I/O differ (:mod:`.client`, :mod:`.async_client`).
"""

from __future__ import annotations

from .async_client import AsyncRestClient
from .client import RestClient
from .core import DEFAULT_REST_BASE_URL

__all__ = ["DEFAULT_REST_BASE_URL", "AsyncRestClient", "RestClient"]
