"""A local PagerDuty Events API v2 emulator, with a console page and fault injection.

It implements PagerDuty's rules on its own (it never imports the library it checks):
validation with PagerDuty's 400 answers, the per-key rate limit, dedup semantics, change
events, TLS with a throwaway CA, and injected failures (5xx, 429, latency, dropped
connections, outages). Run it with ``python -m pd_integrations.emulator`` or in tests::

    from pd_integrations.emulator import Emulator

    with Emulator(port=0) as emulator:
        ...  # send events to emulator.url
        (alert,) = emulator.wait_for_alerts(1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FaultConfig
    from .server import Emulator

__all__ = ["Emulator", "FaultConfig"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the ``pd-integrations`` command reads the emulator's and the
    # demo's flags from this package without loading the server for every other command.
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    if name == "FaultConfig":
        from .faults import FaultConfig

        return FaultConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
