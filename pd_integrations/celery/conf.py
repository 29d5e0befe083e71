"""Celery's settings source: keyword arguments, else ``conf["pagerduty_<name>"]``.

Every setting of :data:`pd_integrations.settings.SETTINGS` is read by
:func:`pd_integrations.settings.load`: a keyword argument of
:class:`~pd_integrations.celery.PagerDuty` first, then the Celery app's configuration
key ``pagerduty_<name>`` (lower case, like Celery's own settings), then the environment
variable ``PAGERDUTY_<NAME>``. Nothing here raises: an invalid value is a
:class:`~pd_integrations.settings.Problem` of the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pd_integrations.settings import SETTINGS, SETTINGS_BY_NAME, PagerDutySettings, Setting, load

__all__ = ["ARGUMENT_ORIGIN", "CONF_ORIGIN", "CONF_PREFIX", "conf_key", "load_settings"]

CONF_PREFIX: Final = "pagerduty_"
CONF_ORIGIN: Final = "celery_app.conf"
ARGUMENT_ORIGIN: Final = "a PagerDuty(...) argument"


def conf_key(setting: Setting) -> str:
    """The Celery configuration key of a setting: ``pagerduty_routing_key``..."""
    return CONF_PREFIX + setting.name


def load_settings(
    conf: Mapping[str, Any],
    arguments: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> PagerDutySettings:
    """Read every setting; unknown keyword arguments are a ``TypeError`` (a typo)."""
    unknown = sorted(set(arguments) - set(SETTINGS_BY_NAME))
    if unknown:
        raise TypeError(f"PagerDuty() got unknown settings: {', '.join(unknown)}")
    given: dict[str, object] = {}
    from_conf: set[str] = set()
    for setting in SETTINGS:
        if arguments.get(setting.name) is not None:
            given[setting.name] = arguments[setting.name]
            continue
        try:
            value = conf.get(conf_key(setting))
        except Exception:  # a lazy configuration that cannot load: the environment decides
            value = None
        if value is not None:
            given[setting.name] = value
            from_conf.add(setting.name)

    def origin(setting: Setting) -> str:
        return CONF_ORIGIN if setting.name in from_conf else ARGUMENT_ORIGIN

    def ref(setting: Setting) -> str:
        return conf_key(setting) if setting.name in from_conf else setting.name

    return load(given, origin=origin, ref=ref, environ=environ)
