"""Who is on call in the emulator: users, schedules and one escalation policy.

The REST API serves these (``/users``, ``/oncalls``), incidents are assigned to the
users on call at the policy's first level, and the console's buttons act as
:attr:`Roster.console_user`. The default roster has three fake users: Alice is on call
on the primary schedule, Bob on the secondary one, Carol on none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class User:
    """A PagerDuty user; ``email`` is what a REST client sends in its ``From`` header."""

    id: str
    name: str
    email: str
    role: str = "user"
    time_zone: str = "UTC"
    job_title: str = ""


@dataclass(frozen=True)
class Schedule:
    """An on-call schedule and the ids of the users on call on it right now."""

    id: str
    name: str
    on_call: tuple[str, ...]


@dataclass(frozen=True)
class EscalationPolicy:
    """Levels of schedules (ids), the first level paged first."""

    id: str
    name: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class Roster:
    """Users, schedules and the escalation policy every emulated service uses.

    ``console_user`` is the id of the user the console's buttons act as (default: the
    first user). Raises ValueError when an id is duplicated or refers to nothing.
    """

    users: tuple[User, ...]
    schedules: tuple[Schedule, ...]
    escalation_policy: EscalationPolicy
    console_user: str = ""
    _by_email: dict[str, User] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.users:
            raise ValueError("a roster needs at least one user")
        _unique("user", [user.id for user in self.users])
        _unique("user email", [user.email.lower() for user in self.users])
        _unique("schedule", [schedule.id for schedule in self.schedules])
        user_ids = {user.id for user in self.users}
        schedule_ids = {schedule.id for schedule in self.schedules}
        for schedule in self.schedules:
            for user_id in schedule.on_call:
                if user_id not in user_ids:
                    raise ValueError(f"schedule {schedule.id} names unknown user {user_id!r}")
        for schedule_id in self.escalation_policy.levels:
            if schedule_id not in schedule_ids:
                raise ValueError(
                    f"escalation policy {self.escalation_policy.id} names unknown "
                    f"schedule {schedule_id!r}"
                )
        if not self.console_user:
            object.__setattr__(self, "console_user", self.users[0].id)
        elif self.console_user not in user_ids:
            raise ValueError(f"console_user {self.console_user!r} is not a user of the roster")
        object.__setattr__(self, "_by_email", {u.email.lower(): u for u in self.users})

    def user(self, user_id: str) -> User | None:
        return next((user for user in self.users if user.id == user_id), None)

    def user_by_email(self, email: str) -> User | None:
        return self._by_email.get(email.strip().lower())

    def schedule(self, schedule_id: str) -> Schedule | None:
        return next((s for s in self.schedules if s.id == schedule_id), None)

    def on_call(self) -> list[tuple[int, Schedule, User]]:
        """``(escalation level, schedule, user)`` for everyone on call now, level order."""
        found = []
        for level, schedule_id in enumerate(self.escalation_policy.levels, start=1):
            schedule = self.schedule(schedule_id)
            assert schedule is not None  # checked in __post_init__
            for user_id in schedule.on_call:
                user = self.user(user_id)
                assert user is not None
                found.append((level, schedule, user))
        return found

    def first_responders(self) -> list[User]:
        """Who a new incident is assigned to: the users on call at level 1."""
        return [user for level, _, user in self.on_call() if level == 1]


def _unique(what: str, ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"duplicate {what} {item!r} in the roster")
        seen.add(item)


DEFAULT_ROSTER = Roster(
    users=(
        User("PUSR001", "Alice Example", "alice@example.com", role="admin", job_title="SRE"),
        User("PUSR002", "Bob Example", "bob@example.com", job_title="Backend engineer"),
        User("PUSR003", "Carol Example", "carol@example.com", job_title="Engineering manager"),
    ),
    schedules=(
        Schedule("PSCH001", "Primary on-call", ("PUSR001",)),
        Schedule("PSCH002", "Secondary on-call", ("PUSR002",)),
    ),
    escalation_policy=EscalationPolicy("PESC001", "Default", ("PSCH001", "PSCH002")),
)
"""Alice (primary, level 1), Bob (secondary, level 2), Carol (not on call)."""
