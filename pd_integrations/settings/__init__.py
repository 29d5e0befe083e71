"""The settings: declared once, read from any framework's source, checked, built.

- :mod:`.values`: what a valid value is (``check_*``) and how text reads (``*_from_text``);
- :mod:`.model`: :data:`SETTINGS`, the one table of settings, and :func:`load`;
- :mod:`.build`: settings -> AlertManager, RequestMonitor, HealthMonitor;
- :mod:`.report`: the ``check`` report shared by every command;
- multi-process servers without shared state are recognised in :mod:`pd_integrations.workers`.
"""

from __future__ import annotations

from .health_checks import HealthCheckSpec
from .model import (
    ENV_PREFIX,
    ENVIRONMENT_ORIGIN,
    SETTINGS,
    SETTINGS_BY_NAME,
    PagerDutySettings,
    Problem,
    Setting,
    load,
)
from .values import *  # noqa: F403 - the value checks are part of this package's API
from .values import MEMORY_STATE_URL, InvalidSetting
from .values import __all__ as _values_all

__all__ = [
    *_values_all,
    "ENVIRONMENT_ORIGIN",
    "ENV_PREFIX",
    "MEMORY_STATE_URL",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "HealthCheckSpec",
    "InvalidSetting",
    "PagerDutySettings",
    "Problem",
    "Setting",
    "load",
]
