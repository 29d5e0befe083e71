from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pd_integrations.encoding import (
    CUT,
    CYCLE,
    HARD_MAX_DEPTH,
    MAX_REPR,
    MORE_ITEMS_KEY,
    REDACT_CONTEXT,
    TOO_DEEP,
    UNREDACTED,
    JSONValue,
    dumps,
    to_jsonable,
    utf8_safe,
)

# -- odd objects applications put in their details ------------------------------------


class Colour(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(enum.IntEnum):
    HIGH = 3


class Mode(enum.StrEnum):
    FAST = "fast"


@dataclasses.dataclass
class Order:
    id: int
    placed: datetime
    card: str = dataclasses.field(default="4111", repr=False)


@dataclasses.dataclass
class Lazy:
    name: str
    later: int = dataclasses.field(init=False)


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 100_000


class HostileEq:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("no ordering")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "<hostile>"


class HostileHash:
    def __hash__(self) -> int:
        raise RuntimeError("no hashing")

    def __repr__(self) -> str:
        return "<unhashable>"


class HostileClass:
    """isinstance() consults __class__, so even type checks raise on this one."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")

    def __repr__(self) -> str:
        return "<classless>"


class BrokenMapping(Mapping[str, int]):
    def __getitem__(self, key: str) -> int:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 3

    def __repr__(self) -> str:
        return "BrokenMapping()"


class Settings(Mapping[str, object]):
    def __init__(self, **values: object) -> None:
        self._values = values

    def __getitem__(self, key: str) -> object:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class PaymentError(Exception):
    class Declined(Exception):
        pass


class SilentError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


class MuteError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Flag(int):
    def __int__(self) -> int:
        raise RuntimeError("no int")

    def __index__(self) -> int:
        raise RuntimeError("no index")


class Ratio(float):
    def __float__(self) -> float:
        raise RuntimeError("no float")


class Name(str):
    def __str__(self) -> str:
        raise RuntimeError("no str")


# -- the types the contract names ------------------------------------------------------


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


def test_plain_details_come_back_equal() -> None:
    details = {"user": "ann", "count": 3, "ratio": 0.5, "ok": True, "none": None, "ids": [1, 2]}
    assert to_jsonable(details) == details
    assert to_jsonable(details) is not details  # a copy, never the caller's object


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
        (
            datetime(2026, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2026-01-02T06:00:00Z",
        ),
        (datetime(2026, 6, 1), "2026-06-01T00:00:00Z"),
        # Converting to UTC would leave the datetime range: the offset is kept instead.
        (
            datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
            "0001-01-01T00:00:00+01:00",
        ),
        (datetime.max, "9999-12-31T23:59:59.999999Z"),
        (time(3, 4, 5, tzinfo=UTC), "03:04:05+00:00"),
        (date(1999, 12, 31), "1999-12-31"),
    ],
)
def test_dates_and_times(value: object, expected: str) -> None:
    assert to_jsonable(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("19.99"), "19.99"),
        (Decimal("1E+3"), "1E+3"),
        (Decimal("NaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
        (Decimal("0.1000000000000000055511151231257827"), "0.1000000000000000055511151231257827"),
    ],
)
def test_decimals_keep_every_digit(value: Decimal, expected: str) -> None:
    assert to_jsonable(value) == expected


def test_paths_and_uuids() -> None:
    assert to_jsonable(Path("/srv") / "app") == "/srv/app"
    assert to_jsonable(UUID("12345678-1234-5678-1234-567812345678")) == (
        "12345678-1234-5678-1234-567812345678"
    )


def test_bytes() -> None:
    assert to_jsonable(b"hello") == "hello"
    assert to_jsonable("héllo".encode()) == "héllo"
    assert to_jsonable(bytearray(b"\xff\x00")) == "<2 bytes: ff00>"
    assert to_jsonable(memoryview(b"abcdef")) == "abcdef"
    assert to_jsonable(memoryview(b"abcdef")[::2]) == "ace"  # not contiguous
    assert to_jsonable(b"line one\nline two\t!") == "line one\nline two\t!"
    # Valid UTF-8 but control characters: binary data, so shown as hex.
    assert to_jsonable(b"\x1b[31m\x00") == "<6 bytes: 1b5b33316d00>"
    blob = bytes(range(256))
    assert to_jsonable(blob) == f"<256 bytes: {blob[:32].hex()}…>"


def test_long_bytes_are_cut_without_decoding_all_of_them() -> None:
    text = to_jsonable(b"a" * 1_000_000, max_string=10)
    assert text == "aaaaaaaaaa…[truncated, 1000000 bytes in all]"
    # A multi-byte character split at the decoding budget is not an error.
    assert str(to_jsonable("é".encode() * 100, max_string=10)).startswith("éééééééééé…")
    assert to_jsonable(b"\xff" * 100, max_string=4) == "<100 bytes: ffff…>"


def test_sets_are_sorted_when_they_can_be() -> None:
    assert to_jsonable(frozenset({3, 1, 2})) == [1, 2, 3]
    mixed = to_jsonable({1, "a", None})
    assert isinstance(mixed, list)
    assert sorted(map(str, mixed)) == ["1", "None", "a"]
    # Only the smallest items are kept when the set is too large; still sorted.
    assert to_jsonable(set(range(100, 0, -1)), max_items=3) == [1, 2, 3, "[97 more items]"]


def test_enums() -> None:
    assert to_jsonable(Colour.PAIR) == [1, 2]
    assert to_jsonable(Level.HIGH) == 3
    assert to_jsonable(Mode.FAST) == "fast"
    assert to_jsonable({Colour.RED: 1, Level.HIGH: 2}) == {"red": 1, "3": 2}


def test_dataclasses() -> None:
    assert to_jsonable([Order(7, datetime(2026, 1, 1))]) == [
        {"id": 7, "placed": "2026-01-01T00:00:00Z"}
    ]
    # A field kept out of repr() (often a secret) stays out of the alert too.
    assert "4111" not in dumps(Order(7, datetime(2026, 1, 1)))
    assert to_jsonable(Lazy("x")) == {"name": "x", "later": "<unset>"}
    # The class itself is not an instance: it is described, not expanded.
    assert str(to_jsonable(Order)).startswith("<class ")


def test_exceptions() -> None:
    assert to_jsonable(ValueError("bad", 3)) == {"type": "ValueError", "message": "('bad', 3)"}
    assert to_jsonable(PaymentError.Declined("no funds")) == {
        "type": "tests.test_encoding.PaymentError.Declined",
        "message": "no funds",
    }
    assert to_jsonable(SilentError("x")) == {
        "type": "tests.test_encoding.SilentError",
        "message": "SilentError('x')",
    }
    assert to_jsonable(MuteError()) == {
        "type": "tests.test_encoding.MuteError",
        "message": "<unrepresentable tests.test_encoding.MuteError>",
    }
    assert to_jsonable(RuntimeError("m" * 50), max_string=10) == {
        "type": "RuntimeError",
        "message": "mmmmmmmmmm…[truncated 40 chars]",
    }


def test_mappings_and_keys() -> None:
    assert to_jsonable(Settings(debug=False, workers=4)) == {"debug": False, "workers": 4}
    assert to_jsonable(MappingProxyType({"a": 1})) == {"a": 1}
    assert to_jsonable(OrderedDict(b=1, a=2)) == {"b": 1, "a": 2}
    keys = to_jsonable(
        {
            None: 1,
            True: 2,
            2.5: 3,
            (1, 2): 4,
            date(2026, 1, 1): 5,
            b"raw": 6,
            math.inf: 7,
        }
    )
    assert keys == {
        "null": 1,
        "true": 2,
        "2.5": 3,
        "(1, 2)": 4,
        "2026-01-01": 5,
        "raw": 6,
        "Infinity": 7,
    }


def test_keys_that_print_alike_are_all_kept() -> None:
    assert to_jsonable({1: "int", "1": "str"}) == {"1": "int", "'1'": "str"}
    assert to_jsonable({"1": "str", 1: "int"}) == {"1": "str", "1 (2)": "int"}
    assert to_jsonable({"a" * 10: 1, "a" * 11: 2}, max_string=3) == {
        "aaa…[truncated 7 chars]": 1,
        "aaa…[truncated 8 chars]": 2,
    }


def test_sequences() -> None:
    assert to_jsonable(deque([1, 2])) == [1, 2]
    assert to_jsonable({"a": 1}.keys()) == ["a"]
    assert to_jsonable({"a": 1}.items()) == [["a", 1]]
    assert to_jsonable(((1, (2,)),)) == [[1, [2]]]


def test_iterators_are_not_consumed() -> None:
    numbers = (n for n in range(3))
    assert str(to_jsonable(numbers)).startswith("<generator object")
    assert list(numbers) == [0, 1, 2]
    stream = iter([1, 2])
    encoded = to_jsonable({"s": stream})
    assert isinstance(encoded, dict)
    assert str(encoded["s"]).startswith("<list_iterator")
    assert list(stream) == [1, 2]


def test_non_finite_floats_become_strings() -> None:
    assert to_jsonable([math.nan, math.inf, -math.inf, 1.5, -0.0]) == [
        "NaN",
        "Infinity",
        "-Infinity",
        1.5,
        -0.0,
    ]
    assert json.loads(dumps({"x": math.nan})) == {"x": "NaN"}


def test_subclasses_of_builtins_become_the_builtin() -> None:
    for value, expected in [(Flag(3), 3), (Ratio(1.5), 1.5), (Name("ann"), "ann")]:
        encoded = to_jsonable(value)
        assert encoded == expected
        assert type(encoded) is type(expected)
    assert to_jsonable(Ratio("nan")) == "NaN"
    assert to_jsonable(True) is True
    assert to_jsonable(False) is False


def test_big_ints() -> None:
    assert to_jsonable(2**200) == 2**200
    assert to_jsonable(-(10**700)) == -(10**700)
    assert to_jsonable(10**5000) == "<int with about 5001 digits>"
    assert to_jsonable(10**20, max_string=5) == 10**20  # numbers are data, not text to cut
    assert json.loads(dumps([10**5000, 10**1000])) == ["<int with about 5001 digits>", 10**1000]


def test_big_ints_follow_the_interpreters_digit_limit() -> None:
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert to_jsonable(10**700) == "<int with about 701 digits>"
        assert dumps(10**700) == '"<int with about 701 digits>"'
    finally:
        sys.set_int_max_str_digits(previous)


def test_strings() -> None:
    assert to_jsonable("x" * 20, max_string=5) == "xxxxx…[truncated 15 chars]"
    assert to_jsonable("\ud800 lone surrogate") == "\ufffd lone surrogate"
    # Two halves of a pair (as JSON decoders can produce) are joined into the character.
    assert to_jsonable("smile \ud83d\ude00") == "smile \U0001f600"
    assert to_jsonable({"k\udcff": "v"}) == {"k\ufffd": "v"}
    dumps("\udcff").encode("utf-8")


# -- bounds ----------------------------------------------------------------------------


def test_cycles_are_marked_and_shared_objects_are_not() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    assert to_jsonable(loop) == [1, CYCLE]
    node: dict[str, Any] = {"name": "a"}
    node["child"] = {"parent": node}
    assert to_jsonable(node) == {"name": "a", "child": {"parent": CYCLE}}
    shared = {"a": 1}
    assert to_jsonable([shared, shared]) == [{"a": 1}, {"a": 1}]


def test_depth_is_bounded() -> None:
    assert to_jsonable([[[1]]], max_depth=2) == [[TOO_DEEP]]
    assert to_jsonable([1], max_depth=0) == TOO_DEEP
    assert to_jsonable("leaf", max_depth=0) == "leaf"
    deep: list[object] = []
    node = deep
    for _ in range(10_000):
        child: list[object] = []
        node.append(child)
        node = child
    assert TOO_DEEP in dumps(deep)
    # Whatever depth the caller asks for, the interpreter's stack is not at risk.
    text = dumps(deep, max_depth=1_000_000)
    assert text.count("[") == HARD_MAX_DEPTH
    assert text.endswith(f'"{TOO_DEEP}"' + "]" * HARD_MAX_DEPTH)


def test_size_bounds_are_marked() -> None:
    assert to_jsonable(list(range(10)), max_items=3) == [0, 1, 2, "[7 more items]"]
    assert to_jsonable(tuple(range(4)), max_items=4) == [0, 1, 2, 3]
    assert to_jsonable(deque(range(5)), max_items=1) == [0, "[4 more items]"]
    mapping = to_jsonable({str(i): i for i in range(5)}, max_items=2)
    assert mapping == {"0": 0, "1": 1, MORE_ITEMS_KEY: "[3 more items]"}
    assert to_jsonable(Order(1, datetime(2026, 1, 1)), max_items=1) == {
        "id": 1,
        MORE_ITEMS_KEY: "[1 more items]",
    }
    assert to_jsonable([], max_items=0) == []
    assert to_jsonable([1], max_items=0) == ["[1 more items]"]


def test_negative_bounds_mean_zero() -> None:
    assert to_jsonable("abc", max_string=-5) == "…[truncated 3 chars]"
    assert to_jsonable([1, 2], max_items=-1) == ["[2 more items]"]


def test_reprs_are_bounded() -> None:
    assert to_jsonable(HugeRepr()) == "x" * MAX_REPR + f"…[truncated {100_000 - MAX_REPR} chars]"
    assert to_jsonable(HugeRepr(), max_string=3) == "xxx…[truncated 99997 chars]"


# -- hostile objects -------------------------------------------------------------------


def test_hostile_objects_never_raise() -> None:
    assert to_jsonable(BadRepr()) == "<unrepresentable tests.test_encoding.BadRepr>"
    assert to_jsonable({"x": HostileEq()}) == {"x": "<hostile>"}
    assert to_jsonable({HostileEq(), HostileEq()}) == ["<hostile>", "<hostile>"]
    assert to_jsonable({HostileEq(): 1}) == {"<hostile>": 1}
    assert to_jsonable([HostileHash()]) == ["<unhashable>"]
    assert to_jsonable(HostileClass()) == "<classless>"
    assert to_jsonable({"m": BrokenMapping()}) == {
        "m": "<unencodable tests.test_encoding.BrokenMapping>"
    }
    assert str(to_jsonable(object())).startswith("<object object at")


def test_a_container_mutated_while_encoded_is_marked_not_raised() -> None:
    class Grower:
        def __init__(self, target: dict[str, object]) -> None:
            self.target = target

        def __repr__(self) -> str:
            self.target["new"] = 1
            return "grower"

    target: dict[str, object] = {}
    target["g"] = Grower(target)
    assert to_jsonable(target) == "<unencodable dict>"


# -- dumps ------------------------------------------------------------------------------


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'
    assert dumps("x" * 10, max_string=2) == '"xx…[truncated 8 chars]"'


def test_dumps_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(value: object, **bounds: int) -> JSONValue:
        return {"x": math.nan}  # what allow_nan=False refuses

    monkeypatch.setattr("pd_integrations.encoding.to_jsonable", broken)
    assert dumps(object()) == '"<unencodable object>"'


# -- any input -------------------------------------------------------------------------


class Opaque:
    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"Opaque({self.label!r})"


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**4300, max_value=10**4400),
    st.floats(),
    st.text(),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.binary(max_size=40),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(timezones=st.none() | st.timezones()),
    st.timedeltas(),
    st.decimals(),
    st.uuids(),
    st.sets(st.integers() | st.text(max_size=3), max_size=4),
    st.frozensets(st.floats(), max_size=4),
    st.sampled_from([Colour.RED, Colour.PAIR, Level.HIGH, Mode.FAST]),
    st.builds(BadRepr),
    st.builds(HostileEq),
    st.builds(HostileHash),
    st.builds(HostileClass),
    st.builds(BrokenMapping),
    st.builds(MuteError),
    st.builds(SilentError, st.text()),
    st.builds(ValueError, st.text()),
    st.builds(Flag, st.integers()),
    st.builds(Ratio, st.floats()),
    st.builds(Name, st.text()),
    st.builds(Opaque, st.text()),
    st.builds(Order, st.integers(), st.datetimes()),
    st.builds(lambda: (n for n in range(3))),
    st.builds(object),
)
keys = st.one_of(
    st.text(max_size=10),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.tuples(st.integers()),
    st.builds(HostileEq),
    st.dates(),
)
values: st.SearchStrategy[object] = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(keys, inner, max_size=6)
        | st.tuples(inner, inner)
        | st.builds(deque, st.lists(inner, max_size=3))
        | st.builds(
            lambda items: Settings(**{f"k{i}": v for i, v in enumerate(items)}),
            st.lists(inner, max_size=3),
        )
    ),
    max_leaves=40,
)

JSON_TYPES = (dict, list, str, int, float, bool, type(None))


def walk(node: object, depth: int = 0) -> Iterator[tuple[object, int]]:
    yield node, depth
    if isinstance(node, dict):
        for key, item in node.items():
            yield key, depth + 1
            yield from walk(item, depth + 1)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, depth + 1)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_any_value_gives_plain_json(value: object) -> None:
    encoded = to_jsonable(value)
    for node, _ in walk(encoded):
        assert type(node) in JSON_TYPES
        if isinstance(node, float):
            assert math.isfinite(node)
        if isinstance(node, dict):
            assert all(type(key) is str for key in node)
    text = dumps(value)
    text.encode("utf-8")  # no lone surrogates left
    assert json.loads(text) == encoded


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=values,
    max_items=st.integers(0, 5),
    max_string=st.integers(0, 50),
    max_depth=st.integers(0, 4),
)
def test_bounds_hold_for_any_value(
    value: object, max_items: int, max_string: int, max_depth: int
) -> None:
    encoded = to_jsonable(value, max_items=max_items, max_string=max_string, max_depth=max_depth)
    # Markers (a cut count, a type name) come on top of max_string; a few fixed-format
    # scalars (dates, UUIDs) are never cut.
    allowance = 80
    for node, depth in walk(encoded):
        if isinstance(node, dict) and node.keys() == {"type", "message"}:
            # An exception: a leaf of fixed shape that happens to be a dict.
            assert depth <= max_depth
        elif isinstance(node, list | dict):
            assert len(node) <= max_items + 1
            assert depth < max_depth
        if isinstance(node, str):
            assert len(node) <= max(max_string, 36) + allowance


# -- text that always encodes, redacted before it is cut -------------------------------


def test_utf8_safe_replaces_lone_surrogates_and_joins_pairs() -> None:
    assert utf8_safe("plain") == "plain"
    assert utf8_safe("café") == "café"
    assert utf8_safe("unknown sku \ud800") == "unknown sku \ufffd"
    assert utf8_safe("\udc00\ud83d") == "\ufffd\ufffd"
    assert utf8_safe("\ud83d\ude00") == "😀"  # a pair that arrived as two code points


def hide(secret: str) -> Callable[[str], str]:
    return lambda text: text.replace(secret, "[x]")


def test_strings_are_redacted_before_they_are_cut() -> None:
    text = "x" * 10 + "SECRETVALUE"
    # Cut first, the secret would survive in part ("xxxxxxxxxxSECR…").
    assert to_jsonable(text, max_string=14, redact=hide("SECRETVALUE")) == "x" * 10 + "[x]"
    cut = to_jsonable(text + "y" * 10, max_string=14, redact=hide("SECRETVALUE"))
    assert cut == "x" * 10 + "[x]y…[truncated 9 chars]"
    assert to_jsonable(text, max_string=14) == "x" * 10 + "SECR…[truncated 7 chars]"


def test_every_kind_of_text_reaches_the_redactor() -> None:
    class Shown:
        def __repr__(self) -> str:
            return "Shown(SECRET)"

    @dataclasses.dataclass
    class Row:
        note: str

    value = {
        "key SECRET": "value SECRET",
        "error": ValueError("boom SECRET"),
        "object": Shown(),
        "bytes": b"raw SECRET",
        "row": Row("SECRET"),
        ("tuple", "SECRET"): 1,
        "nested": [{"deep": "SECRET"}],
    }
    encoded = json.dumps(to_jsonable(value, redact=hide("SECRET")))
    assert "SECRET" not in encoded
    assert "[x]" in encoded


def test_keys_that_redact_alike_are_all_kept_and_stay_redacted() -> None:
    encoded = to_jsonable({"a SECRET": 1, "a OTHER": 2}, redact=hide("SECRET"))
    assert encoded == {"a [x]": 1, "a OTHER": 2}
    both = to_jsonable({"SECRET1": 1, "SECRET2": 2}, redact=lambda text: "[x]")
    assert isinstance(both, dict)
    assert len(both) == 2
    assert "SECRET" not in json.dumps(both)


def test_the_redactor_reads_a_window_past_the_cut_and_sees_where_it_ends() -> None:
    seen: list[str] = []

    def record(text: str) -> str:
        seen.append(text)
        return text

    to_jsonable("z" * 50_000, max_string=100, redact=record)
    assert seen == ["z" * (100 + REDACT_CONTEXT) + CUT]
    assert to_jsonable("z" * 50_000, max_string=3, redact=record) == ("zzz…[truncated 49997 chars]")
    seen.clear()
    huge = b"y" * 1_000_000
    assert to_jsonable(huge, max_string=5, redact=record) == (
        "yyyyy…[truncated, 1000000 bytes in all]"
    )
    assert seen == ["y" * (5 + REDACT_CONTEXT) + CUT]


def test_a_failing_redactor_costs_the_string_not_the_details() -> None:
    def broken(text: str) -> str:
        raise RuntimeError("redactor bug")

    # Keys are text too: both fail, and both entries are kept.
    assert to_jsonable({"a": "secret", "n": 1}, redact=broken) == {
        UNREDACTED: UNREDACTED,
        f"{UNREDACTED} (2)": 1,
    }
    assert to_jsonable(b"secret bytes" * 10_000, max_string=4, redact=broken) == UNREDACTED


def test_redacted_strings_are_valid_utf8() -> None:
    assert to_jsonable({"\ud800k": "v\udfff"}, redact=lambda text: text) == {"\ufffdk": "v\ufffd"}


any_text = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)))


@settings(max_examples=200, deadline=None)
@given(text=any_text, limit=st.integers(min_value=0, max_value=40))
def test_any_text_redacted_or_not_gives_bounded_valid_utf8(text: str, limit: int) -> None:
    for redact in (None, str.upper):
        encoded = to_jsonable({text: text}, max_string=limit, redact=redact)
        assert isinstance(encoded, dict)
        json.dumps(encoded, ensure_ascii=False).encode("utf-8")
        for key, value in encoded.items():
            for part in (key, value):
                assert isinstance(part, str)
                # A redactor may lengthen the text ("ß".upper() is "SS") before the cut.
                longest = max(len(text), len(text.upper()))
                assert len(part) <= limit + len(f"…[truncated {longest} chars]")
