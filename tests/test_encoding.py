from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pd_integrations.encoding import CYCLE, TOO_DEEP, dumps, to_jsonable


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Order:
    id: int
    placed: datetime


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class HostileEq:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "<hostile>"


def test_common_types() -> None:
    value = to_jsonable(
        {
            "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1))),
            "naive": datetime(2026, 1, 2, 3, 4, 5),
            "day": date(2026, 1, 2),
            "at": time(3, 4),
            "price": Decimal("19.99"),
            "id": UUID(int=7),
            "path": PurePosixPath("/etc/app.conf"),
            "colour": Colour.RED,
            "order": Order(1, datetime(2026, 1, 1, tzinfo=UTC)),
            "tags": {"b", "a", "c"},
            "pair": (1, 2),
            1: "int key",
            "error": KeyError("missing"),
        }
    )
    assert value == {
        "when": "2026-01-02T02:04:05Z",
        "naive": "2026-01-02T03:04:05Z",
        "day": "2026-01-02",
        "at": "03:04:00",
        "price": "19.99",
        "id": "00000000-0000-0000-0000-000000000007",
        "path": "/etc/app.conf",
        "colour": "red",
        "order": {"id": 1, "placed": "2026-01-01T00:00:00Z"},
        "tags": ["a", "b", "c"],
        "pair": [1, 2],
        "1": "int key",
        "error": {"type": "KeyError", "message": "'missing'"},
    }


def test_bytes() -> None:
    assert to_jsonable(b"hello") == "hello"
    assert to_jsonable(bytearray(b"\xff\x00")) == "<2 bytes: ff00>"


def test_non_finite_floats_become_strings() -> None:
    assert to_jsonable([math.nan, math.inf, -math.inf, 1.5]) == [
        "NaN",
        "Infinity",
        "-Infinity",
        1.5,
    ]
    json.loads(dumps({"x": math.nan}))


def test_cycles_and_depth_are_marked() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    assert to_jsonable(loop) == [1, CYCLE]
    deep: list[object] = []
    node = deep
    for _ in range(100):
        child: list[object] = []
        node.append(child)
        node = child
    text = dumps(deep)
    assert TOO_DEEP in text
    shared = {"a": 1}
    assert to_jsonable([shared, shared]) == [{"a": 1}, {"a": 1}]  # shared is not a cycle


def test_size_bounds_are_marked() -> None:
    assert to_jsonable("x" * 20, max_string=5) == "xxxxx…[truncated 15 chars]"
    assert to_jsonable(list(range(10)), max_items=3) == [0, 1, 2, "[7 more items]"]
    mapping = to_jsonable({str(i): i for i in range(5)}, max_items=2)
    assert mapping == {"0": 0, "1": 1, "…": "[3 more items]"}


def test_hostile_objects_never_raise() -> None:
    assert to_jsonable(BadRepr()).startswith("<unrepresentable")  # type: ignore[union-attr]
    assert to_jsonable({"x": HostileEq()}) == {"x": "<hostile>"}
    assert to_jsonable({HostileEq(), HostileEq()}) == ["<hostile>", "<hostile>"]
    assert to_jsonable(10**5000).startswith("<int with more")  # type: ignore[union-attr]
    assert to_jsonable("\ud800 lone surrogate") == "? lone surrogate"
    assert to_jsonable(object()).startswith("<object object")  # type: ignore[union-attr]


def test_subclasses_of_builtins() -> None:
    class Flag(int):
        pass

    class Name(str):
        def __str__(self) -> str:
            raise RuntimeError

    assert to_jsonable(Flag(3)) == 3
    assert to_jsonable(Name("ann")) == "ann"
    assert to_jsonable(True) is True


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(max_size=40),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.decimals(),
    st.uuids(),
    st.sets(st.integers(), max_size=4),
    st.builds(BadRepr),
    st.builds(object),
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=6)
        | st.tuples(inner, inner)
    ),
    max_leaves=50,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_any_value_gives_valid_json(value: object) -> None:
    text = dumps(value)
    json.loads(text)
    text.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(value=values, max_items=st.integers(1, 5), max_string=st.integers(1, 50))
def test_bounds_hold_for_any_value(value: object, max_items: int, max_string: int) -> None:
    encoded = to_jsonable(value, max_items=max_items, max_string=max_string, max_depth=4)

    def check(node: object, depth: int) -> None:
        assert depth <= 5
        if isinstance(node, list):
            assert len(node) <= max_items + 1
            for item in node:
                check(item, depth + 1)
        elif isinstance(node, dict):
            assert len(node) <= max_items + 1
            for item in node.values():
                check(item, depth + 1)

    check(encoded, 0)
