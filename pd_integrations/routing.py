"""RoutingAlertManager: routing rules applied in front of one AlertManager per routing key.

It is an :class:`~pd_integrations.AlertManager` for the main routing key, so every
adapter, monitor and health check uses it unchanged. Each ``alert()`` first asks the
rules (:mod:`pd_integrations.policy`; evaluated only when an alert fires): the first
that matches may drop the alert (``ignore``), change its severity, or hand it to the
manager of another routing key. Every routing key has a manager of its own, with its
own dispatcher, rate budget, suppression of repeats and state (kept apart by key, in
memory or in the shared Redis), so a storm on one team's key cannot delay or starve
another's.

Resolving, acknowledging and what webhooks report (``mark_resolved``...) go to the
manager whose state has the alert open; ``flush``, ``close``, ``stats``,
``active_alerts`` and ``forget_all`` cover every key. Change events go to the main key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from pd_integrations.delivery.dispatcher import DispatchStats

from .alerts import Alert, AlertManager, make_dedup_key
from .events import Severity, mask_key
from .policy import BeforeSend, BeforeSendHook, Hint, Rule, as_hook, decide, parse_rules

__all__ = ["RoutingAlertManager"]

_log = logging.getLogger("pd_integrations.routing")

# Options that belong to one routing key's manager and are not copied to the others.
_OWN_OPTIONS = frozenset({"client", "state"})


class RoutingAlertManager(AlertManager):
    """An AlertManager for ``routing_key`` that applies ``rules`` to every alert.

    ``rules`` are :class:`~pd_integrations.policy.Rule` objects or their settings form
    (``[{"match": {"path_prefix": "/payments"}, "routing_key": "..."}]``), checked here
    (:class:`~pd_integrations.policy.InvalidRule`). Every other keyword is
    :class:`AlertManager`'s; the managers of the other routing keys get the same ones,
    but ``client`` and ``state``, which belong to the main key (pass ``state_url`` to
    share state, and a ``base_url``).
    """

    def __init__(
        self,
        routing_key: str | None = None,
        *,
        rules: Iterable[Rule | Mapping[str, Any]] = (),
        before_send: BeforeSend | BeforeSendHook | str | None = None,
        **options: Any,
    ) -> None:
        self.rules: tuple[Rule, ...] = parse_rules(rules)
        hook = as_hook(before_send)  # one hook, so each failure is logged once in all
        super().__init__(routing_key, before_send=hook, **options)
        own = self.dispatcher.client.routing_key if self.dispatcher is not None else None
        shared = {name: value for name, value in options.items() if name not in _OWN_OPTIONS}
        client = options.get("client")
        if client is not None and shared.get("base_url") is None:
            shared["base_url"] = client.base_url
        self.routes: dict[str, AlertManager] = {}
        """The manager of each other routing key the rules send alerts to."""
        for rule in self.rules:
            key = rule.routing_key
            if key is not None and key != own and key not in self.routes:
                self.routes[key] = AlertManager(key, before_send=hook, **shared)

    def __repr__(self) -> str:
        own = self.dispatcher.client.routing_key if self.dispatcher is not None else None
        keys = ", ".join(mask_key(key) for key in self.routes)
        return f"<RoutingAlertManager routing_key={mask_key(own)} routes=[{keys}]>"

    def _managers(self) -> list[AlertManager]:
        return [self, *self.routes.values()]

    # -- raising alerts ------------------------------------------------------------------

    def alert(
        self,
        summary: str,
        severity: Severity | str,
        *,
        alert_type: str,
        hint: Hint | None = None,
        **options: Any,
    ) -> str:
        """Apply the first matching rule, then raise the alert on its routing key's manager."""
        rule = self._rule(severity, alert_type, options.get("identifier"), hint)
        if rule is None:
            return super().alert(summary, severity, alert_type=alert_type, hint=hint, **options)
        if rule.ignore:
            key = make_dedup_key(
                alert_type,
                prefix=self.dedup_key_prefix,
                component=options.get("component"),
                identifier=options.get("identifier"),
            )
            self._policy_drops.suppressed(
                self,
                key,
                "rule",
                lambda: self._trigger(
                    summary,
                    Severity.parse(severity),
                    key,
                    options.get("component"),
                    options.get("custom_details"),
                    alert_type,
                ),
            )
            return key
        level = rule.severity or severity
        target = self.routes.get(rule.routing_key) if rule.routing_key else None
        if target is None:
            return super().alert(summary, level, alert_type=alert_type, hint=hint, **options)
        return target.alert(summary, level, alert_type=alert_type, hint=hint, **options)

    def _rule(
        self, severity: Severity | str, alert_type: str, identifier: object, hint: Hint | None
    ) -> Rule | None:
        if not self.rules:
            return None
        try:
            level = Severity.parse(severity)
        except ValueError:
            return None  # AlertManager.alert says what is wrong with it
        try:
            return decide(
                self.rules,
                alert_type,
                level,
                identifier if isinstance(identifier, str) else None,
                hint,
            )
        except Exception:
            # A hint of an unexpected shape: the alert goes out as it is rather than not.
            _log.exception("routing rules could not be applied to a %s alert", alert_type)
            return None

    # -- acting on alerts ---------------------------------------------------------------

    def _holders(self, dedup_key: str) -> list[AlertManager]:
        """The managers whose state has the alert open."""
        holders = []
        for manager in self._managers():
            try:
                if manager.state.get_alert(dedup_key) is not None:
                    holders.append(manager)
            except Exception:
                _log.exception("could not look up alert %r", dedup_key)
        return holders

    def acknowledge(self, dedup_key: str) -> None:
        holders = [m for m in self._holders(dedup_key) if m is not self]
        if holders:
            holders[0].acknowledge(dedup_key)
        else:
            super().acknowledge(dedup_key)

    def resolve(self, dedup_key: str) -> None:
        """Resolve on the key(s) holding the alert; on every key when none knows it.

        A resolve for an alert PagerDuty does not have open changes nothing there, and
        one the state forgot (expired) may be open on any of the keys.
        """
        holders = self._holders(dedup_key) or self._managers()
        for manager in holders:
            if manager is self:
                super().resolve(dedup_key)
            else:
                manager.resolve(dedup_key)

    def mark_resolved(self, dedup_key: str) -> bool:
        resolved = super().mark_resolved(dedup_key)
        for manager in self.routes.values():
            resolved = manager.mark_resolved(dedup_key) or resolved
        return resolved

    def mark_acknowledged(self, dedup_key: str) -> bool:
        acknowledged = super().mark_acknowledged(dedup_key)
        for manager in self.routes.values():
            acknowledged = manager.mark_acknowledged(dedup_key) or acknowledged
        return acknowledged

    def active_alerts(self) -> list[Alert]:
        found = super().active_alerts()
        for manager in self.routes.values():
            found.extend(manager.active_alerts())
        return found

    def get_alert(self, dedup_key: str) -> Alert | None:
        found = super().get_alert(dedup_key)
        for manager in self.routes.values():
            if found is not None:
                break
            found = manager.get_alert(dedup_key)
        return found

    def forget_all(self) -> None:
        super().forget_all()
        for manager in self.routes.values():
            manager.forget_all()

    # -- delivery -----------------------------------------------------------------------

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait for every key's queue, all within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        flushed = super().flush(_left(deadline))
        for manager in self.routes.values():
            flushed = manager.flush(_left(deadline)) and flushed
        return flushed

    def close(self, timeout: float | None = 5.0) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        closed = super().close(_left(deadline))
        for manager in self.routes.values():
            closed = manager.close(_left(deadline)) and closed
        return closed

    def stats(self) -> DispatchStats:
        """The counts of every routing key added up (``routes[key].stats()`` for one)."""
        total = super().stats()
        for manager in self.routes.values():
            counts = manager.stats()
            total = DispatchStats(
                **{
                    f.name: getattr(total, f.name) + getattr(counts, f.name)
                    for f in fields(DispatchStats)
                }
            )
        return total


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
