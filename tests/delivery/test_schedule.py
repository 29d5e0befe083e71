"""The delivery schedule's rules, without threads or clocks (times are passed in)."""

from __future__ import annotations

from pd_integrations.delivery.schedule import KNOWN_RANKS, Schedule, Slot

CRITICAL, ERROR, WARNING, INFO = 4, 3, 2, 1


def take(schedule: Schedule[str], now: float = 0.0) -> str:
    slot = schedule.next_ready(now)
    assert isinstance(slot, Slot), f"nothing ready at {now}: {slot!r}"
    return slot.item


def test_an_event_backing_off_does_not_hold_up_the_others() -> None:
    schedule: Schedule[str] = Schedule()
    first = schedule.add("a", "a", ERROR)
    schedule.add("b", "b", ERROR)
    assert take(schedule) == "a"
    schedule.retry_at(first.seq, 30.0)
    assert take(schedule, 1.0) == "b"
    assert schedule.next_ready(1.0) == 29.0  # only "a" is left, due in 29 s
    assert take(schedule, 30.0) == "a"


def test_a_keys_events_go_out_in_order_and_wait_for_each_other() -> None:
    schedule: Schedule[str] = Schedule()
    trigger = schedule.add("trigger", "k", CRITICAL)
    schedule.add("resolve", "k", CRITICAL)
    schedule.add("other", "o", INFO)
    assert take(schedule) == "trigger"
    schedule.retry_at(trigger.seq, 10.0)
    assert take(schedule, 1.0) == "other"  # the resolve waits for its trigger
    assert schedule.next_ready(1.0) == 9.0
    again = schedule.next_ready(10.0)
    assert isinstance(again, Slot)
    assert again.item == "trigger"
    schedule.remove(again.seq)
    assert take(schedule, 10.0) == "resolve"


def test_the_most_important_ready_event_goes_first_oldest_within_a_rank() -> None:
    schedule: Schedule[str] = Schedule()
    ranked = (("info", INFO), ("warn-1", WARNING), ("crit", CRITICAL), ("warn-2", WARNING))
    for item, rank in ranked:
        schedule.add(item, item, rank)
    order = []
    while len(schedule):
        slot = schedule.next_ready(0.0)
        assert isinstance(slot, Slot)
        order.append(slot.item)
        schedule.remove(slot.seq)
    assert order == ["crit", "warn-1", "warn-2", "info"]


def test_an_acknowledge_or_resolve_ranks_with_its_alert() -> None:
    schedule: Schedule[str] = Schedule()
    assert schedule.rank_of("db", CRITICAL, is_trigger=True) == CRITICAL
    assert schedule.rank_of("db", ERROR, is_trigger=False) == CRITICAL
    assert schedule.rank_of("disk", INFO, is_trigger=True) == INFO
    assert schedule.rank_of("disk", ERROR, is_trigger=False) == INFO
    assert schedule.rank_of("unknown", ERROR, is_trigger=False) == ERROR


def test_remembered_ranks_are_bounded() -> None:
    schedule: Schedule[str] = Schedule()
    for n in range(KNOWN_RANKS + 10):
        schedule.rank_of(f"k{n}", CRITICAL, is_trigger=True)
    assert schedule.rank_of("k0", ERROR, is_trigger=False) == ERROR  # forgotten, oldest first
    assert schedule.rank_of(f"k{KNOWN_RANKS + 9}", ERROR, is_trigger=False) == CRITICAL


def test_a_pause_holds_every_event_back_until_it_ends() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", "a", CRITICAL)
    schedule.circuit.pause(5.0)
    assert schedule.next_ready(1.0) == 4.0
    assert take(schedule, 5.0) == "a"


def test_a_merged_trigger_that_became_more_severe_is_sent_with_its_new_rank() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", "a", ERROR)
    warning = schedule.add("b", "b", WARNING)
    schedule.rerank(warning.seq, CRITICAL)
    assert take(schedule) == "b"


def test_dropped_events_do_not_pile_up_in_the_schedule() -> None:
    schedule: Schedule[str] = Schedule()
    for n in range(10_000):
        slot = schedule.add(str(n), str(n), INFO)
        if n >= 10:
            schedule.remove(schedule.lowest().seq)  # type: ignore[union-attr]
    assert len(schedule) == 10
    assert len(schedule._ready) + len(schedule._waiting) <= 2 * 10 + 64
    assert slot.item == "9999"
