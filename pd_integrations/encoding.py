"""Turn anything an application puts in ``custom_details`` into JSON, without raising.

Alerting runs when something already went wrong, often with odd objects in hand: a
half-built ORM row, a cyclic structure, bytes, NaN, an object whose ``__repr__`` raises.
The encoder must still produce valid JSON, bounded in size and depth, and never raise
into the caller. Plain dicts of strings and numbers take an exact-type fast path, since
they are what most details are.

Every string that comes out is valid UTF-8: lone surrogates (from JSON ``"\\ud800"``,
``surrogateescape`` file names, broken JavaScript) become U+FFFD. With a ``redact``
function, each string and key is redacted *before* it is cut, so a secret straddling
the cut is seen whole: the redactor reads up to :data:`REDACT_CONTEXT` characters past
the cut, and a string longer than that reaches it ending in :data:`CUT`, so what was cut
off beyond the window can be recognised as cut.
"""

from __future__ import annotations

import codecs
import dataclasses
import heapq
import itertools
import json
import math
import numbers
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, TypeAlias
from uuid import UUID

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

DEFAULT_MAX_DEPTH = 16
DEFAULT_MAX_STRING = 8192
DEFAULT_MAX_ITEMS = 1000
# Deeper nesting than this could exhaust the interpreter's stack, whatever the caller asks.
HARD_MAX_DEPTH = 100
# A repr is a description, not data: keep it shorter than real strings may be.
MAX_REPR = 1000

# How far past a cut a redactor reads, so that a secret straddling the cut is redacted
# whole rather than left half visible: longer than a PEM-encoded 4096-bit RSA key.
REDACT_CONTEXT = 4096
# Ends a text cut short before it was redacted; redactors treat what precedes it as cut.
CUT = "…"
# Stands for a string whose redactor failed: sending it unredacted is not an option.
UNREDACTED = "<redaction failed>"

CYCLE = "<cycle>"
TOO_DEEP = "<max depth>"
# Key of the entry that stands for the items a mapping lost to ``max_items``.
MORE_ITEMS_KEY = "…"

_BYTES_PREVIEW = 32
# Ints below this size always print, whatever sys.set_int_max_str_digits() says (its
# minimum is 640 digits); larger ones are checked before they reach json.dumps.
_SAFE_INT = 2**2000
_MIN_SAFE_INT = -_SAFE_INT  # named: negating it in place builds a 2000-bit int each time
_ENUM_HOPS = 8
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SEQUENCES: tuple[type, ...] = (
    list,
    tuple,
    deque,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
_CONTAINERS: tuple[type, ...] = (Mapping, *_SEQUENCES, set, frozenset)


def _type_name(value: object) -> str:
    try:
        cls = type(value)
        module, name = cls.__module__, cls.__qualname__
        if not isinstance(module, str) or not isinstance(name, str):
            return "object"
        return name if module == "builtins" else f"{module}.{name}"
    except Exception:  # a metaclass with hostile attributes
        return "object"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def utf8_safe(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so it always encodes as UTF-8.

    Surrogates are the only code points UTF-8 cannot encode. Going through UTF-16 joins
    surrogate pairs that arrived as two code points (from JSON or JavaScript sources)
    into the character they stand for. ASCII, the common case, costs one flag check.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _unwrap_enum(value: Enum) -> object:
    inner: object = value
    for _ in range(_ENUM_HOPS):
        if not isinstance(inner, Enum):
            return inner
        inner = inner.value
    return repr(value) if isinstance(inner, Enum) else inner


def _datetime(value: datetime) -> str:
    try:
        utc = value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    except (OverflowError, ValueError):  # near datetime.min/max: keep the original offset
        return value.isoformat()
    text = utc.isoformat()
    return f"{text[:-6]}Z" if text.endswith("+00:00") else text


class _Encoder:
    __slots__ = ("active", "max_depth", "max_items", "max_string", "redact")

    def __init__(
        self,
        max_depth: int,
        max_string: int,
        max_items: int,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_string = max_string
        self.max_items = max_items
        self.redact = redact
        # ids of the containers being encoded right now: meeting one again is a cycle,
        # while the same object shared by two branches is encoded twice.
        self.active: set[int] = set()

    def encode(self, value: object, depth: int) -> JSONValue:
        if type(value) is str:
            return self.text(value)
        if type(value) is int:
            return value if _MIN_SAFE_INT < value < _SAFE_INT else self.big_int(value)
        if value is None or type(value) is bool:
            return value
        if type(value) is float:
            return value if math.isfinite(value) else _nonfinite(value)
        if type(value) is dict or type(value) is list:
            return self.container(value, depth)
        try:
            return self.other(value, depth)
        except Exception:  # isinstance() itself can raise, via a hostile __class__
            return self.repr(value)

    def text(self, value: str, limit: int | None = None) -> str:
        limit = self.max_string if limit is None else limit
        if self.redact is not None:
            return self.redacted(value, limit)
        if len(value) <= limit and value.isascii():
            return value
        return utf8_safe(_cut(value, limit))

    def redacted(self, value: str, limit: int) -> str:
        """Redact first, then cut: the cut can never leave part of a secret behind."""
        size = len(value)
        window = limit + REDACT_CONTEXT
        if size > window:
            value = value[:window] + CUT
        try:
            value = self.redact(utf8_safe(value))  # type: ignore[misc]
        except Exception:
            return UNREDACTED
        if len(value) <= limit:
            return value
        # Counted in the original's characters when the window cut it.
        dropped = size - limit if size > window else len(value) - limit
        return f"{value[:limit]}…[truncated {dropped} chars]"

    def big_int(self, value: int) -> JSONValue:
        try:
            str(value)
        except ValueError:  # beyond sys.get_int_max_str_digits(): json.dumps would fail
            return f"<int with about {int(value.bit_length() * math.log10(2)) + 1} digits>"
        return value

    def repr(self, value: object) -> str:
        try:
            # repr() has already refused a __repr__ returning something other than str.
            return self.text(str.__str__(repr(value)), min(self.max_string, MAX_REPR))
        except Exception:
            return f"<unrepresentable {_type_name(value)}>"

    def other(self, value: object, depth: int) -> JSONValue:
        if isinstance(value, Enum):
            return self.encode(_unwrap_enum(value), depth)
        if isinstance(value, BaseException):
            return {"type": _type_name(value), "message": self.exception_message(value)}
        if isinstance(value, _CONTAINERS) or hasattr(type(value), "__dataclass_fields__"):
            return self.container(value, depth)
        return self.leaf(value)

    def leaf(self, value: object) -> JSONValue:
        """Everything but containers; subclasses of builtins are reduced to the builtin."""
        if isinstance(value, str):
            return self.text(str.__str__(value))
        if isinstance(value, int):  # bool cannot be subclassed, so this is a real number
            return self.encode(int.__int__(value), 0)
        if isinstance(value, float):
            return self.encode(float.__float__(value), 0)
        if isinstance(value, datetime):
            return _datetime(value)
        if isinstance(value, date | time):
            return value.isoformat()
        if isinstance(value, Decimal | PurePath):
            return self.text(str(value))
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.binary(value)
        if isinstance(value, numbers.Integral):  # numpy and friends
            return self.encode(int(value), 0)
        return self.repr(value)

    def exception_message(self, error: BaseException) -> str:
        try:
            return self.text(str.__str__(str(error)))
        except Exception:  # a broken __str__: repr may still work
            return self.repr(error)

    def binary(self, value: bytes | bytearray | memoryview) -> str:
        view = memoryview(value)
        try:
            flat = view.cast("B")
        except (TypeError, ValueError):  # not C-contiguous
            flat = memoryview(view.tobytes())
        size = flat.nbytes
        # Decode no more than can be shown (and redacted): a char takes at most four bytes.
        shown_chars = self.max_string + (REDACT_CONTEXT if self.redact is not None else 0)
        budget = shown_chars * 4 + 4
        head = bytes(flat[:budget])
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head, final=size <= budget)
        except UnicodeDecodeError:
            text = None
        if text is not None and not _CONTROL.search(text):
            if size <= budget:
                return self.text(text)
            if self.redact is not None:
                try:
                    text = self.redact(text[:shown_chars] + CUT).removesuffix(CUT)
                except Exception:
                    return UNREDACTED
            return f"{text[: self.max_string]}…[truncated, {size} bytes in all]"
        shown = min(_BYTES_PREVIEW, self.max_string // 2)
        more = "…" if size > shown else ""
        return f"<{size} bytes: {head[:shown].hex()}{more}>"

    def container(self, value: object, depth: int) -> JSONValue:
        if depth >= self.max_depth:
            return TOO_DEEP
        ident = id(value)
        if ident in self.active:
            return CYCLE
        self.active.add(ident)
        try:
            kind = type(value)
            if kind is dict or (kind is not list and isinstance(value, Mapping)):
                return self.mapping(value, depth + 1)  # type: ignore[arg-type]
            if isinstance(value, _SEQUENCES):
                return self.sequence(value, depth + 1)  # type: ignore[arg-type]
            if isinstance(value, set | frozenset):
                return self.unordered(value, depth + 1)
            return self.dataclass(value, depth + 1)
        except Exception:  # the container broke while iterated (hostile, or mutated)
            return f"<unencodable {_type_name(value)}>"
        finally:
            self.active.discard(ident)

    def mapping(self, value: Mapping[object, object], depth: int) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        limit = self.max_string
        redact = self.redact
        # Plain str keys cannot clash with each other; once a key was converted (or
        # redacted), any later one may clash with it.
        converted = False
        for index, (key, item) in enumerate(value.items()):
            if index >= self.max_items:
                out[MORE_ITEMS_KEY] = self.more(value, index)
                break
            if type(key) is str and redact is not None:
                name = self.unique(self.redacted(key, limit), key, out)
                converted = True
            elif type(key) is str and len(key) <= limit and key.isascii():
                name = self.unique(key, key, out) if converted else key
            else:
                name = self.unique(self.key(key), key, out)
                converted = True
            out[name] = self.encode(item, depth)
        return out

    def more(self, value: object, shown: int) -> str:
        try:
            return f"[{len(value) - shown} more items]"  # type: ignore[arg-type]
        except Exception:
            return "[more items]"

    def key(self, key: object) -> str:
        try:
            if isinstance(key, Enum):
                key = _unwrap_enum(key)
            if isinstance(key, _CONTAINERS):
                return self.repr(key)
            encoded = self.encode(key, 0)
        except Exception:
            return self.repr(key)
        if isinstance(encoded, str):
            return encoded
        if isinstance(encoded, dict | list):  # an exception or dataclass used as a key
            return self.repr(key)
        # What json.dumps itself does with True, None and numbers as keys.
        return json.dumps(encoded)

    def unique(self, name: str, key: object, out: dict[str, JSONValue]) -> str:
        """Keep both entries when two keys print alike, such as ``1`` and ``"1"``."""
        if name not in out:
            return name
        candidate = self.repr(key)
        number = 2
        while candidate in out:
            candidate = f"{name} ({number})"
            number += 1
        return candidate

    def sequence(self, value: list[object] | tuple[object, ...], depth: int) -> list[JSONValue]:
        limit = self.max_items
        items: Iterable[object] = (
            value[:limit] if isinstance(value, list | tuple) else itertools.islice(value, limit)
        )
        out = [self.encode(item, depth) for item in items]
        if len(out) >= limit and len(value) > limit:
            out.append(self.more(value, limit))
        return out

    def unordered(self, value: set[Any] | frozenset[Any], depth: int) -> list[JSONValue]:
        limit = self.max_items
        items: Iterable[object]
        try:
            # Sorted when the items allow it, so equal sets give equal details.
            items = sorted(value) if len(value) <= limit else heapq.nsmallest(limit, value)
        except Exception:  # mixed or unorderable items keep iteration order
            items = itertools.islice(value, limit)
        out = [self.encode(item, depth) for item in items]
        if len(value) > limit:
            out.append(self.more(value, limit))
        return out

    def dataclass(self, value: object, depth: int) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        # Fields declared repr=False are kept out of repr() on purpose, often because
        # they hold secrets; they stay out of alerts too.
        shown = [field for field in dataclasses.fields(value) if field.repr]  # type: ignore[arg-type]
        for field in shown[: self.max_items]:
            try:
                item = getattr(value, field.name)
            except Exception:  # an init=False field never set, or a raising property
                out[field.name] = "<unset>"
                continue
            out[field.name] = self.encode(item, depth)
        if len(shown) > self.max_items:
            out[MORE_ITEMS_KEY] = f"[{len(shown) - self.max_items} more items]"
        return out


def to_jsonable(
    value: object,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
    redact: Callable[[str], str] | None = None,
) -> JSONValue:
    """A JSON-compatible copy of ``value``, bounded in depth, string length and size.

    Containers nested deeper than ``max_depth`` become ``"<max depth>"``, strings longer
    than ``max_string`` are cut with a ``…[truncated N chars]`` marker, and containers
    keep their first ``max_items`` items plus a ``[N more items]`` marker. Strings are
    valid UTF-8. ``redact``, if given, is applied to every string and key before it is
    cut (see the module docstring); a redactor that raises costs that string, replaced
    by ``"<redaction failed>"``. Never raises.
    """
    return encode_with(
        lambda depth, string, items: _Encoder(depth, string, items, redact),
        value,
        max_depth=max_depth,
        max_string=max_string,
        max_items=max_items,
    )


def encode_with(
    make_encoder: Callable[[int, int, int], _Encoder],
    value: object,
    *,
    max_depth: int,
    max_string: int,
    max_items: int,
) -> JSONValue:
    """:func:`to_jsonable` by the encoder ``make_encoder(max_depth, max_string,
    max_items)`` returns, with the same bounds and safety net: a subclass may judge what
    it encodes as it goes (the scrubber applies its key rules in the same walk). Never
    raises."""
    try:
        encoder = make_encoder(
            min(max(int(max_depth), 0), HARD_MAX_DEPTH),
            max(int(max_string), 0),
            max(int(max_items), 0),
        )
        return encoder.encode(value, 0)
    except Exception:  # a hostile object defeated every guard: say so, do not raise
        return f"<unencodable {_type_name(value)}>"


def dumps(
    value: object,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> str:
    """Compact JSON text for ``value`` (see :func:`to_jsonable`); never raises."""
    try:
        return json.dumps(
            to_jsonable(value, max_depth=max_depth, max_string=max_string, max_items=max_items),
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )
    except Exception:  # e.g. sys.set_int_max_str_digits() lowered since encoding
        return json.dumps(f"<unencodable {_type_name(value)}>")
