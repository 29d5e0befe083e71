"""Turn anything an application puts in ``custom_details`` into JSON, without raising.

Alerting runs when something already went wrong, often with odd objects in hand: a
half-built ORM row, a cyclic structure, bytes, NaN. The encoder must still produce valid
JSON, bounded in size and depth, and never raise into the caller.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

DEFAULT_MAX_DEPTH = 16
DEFAULT_MAX_STRING = 8192
DEFAULT_MAX_ITEMS = 1000
MAX_REPR = 1000
CYCLE = "<cycle>"
TOO_DEEP = "<max depth>"
_BYTES_PREVIEW = 32
# Python refuses to turn ints with more digits than this into text.
_MAX_INT_DIGITS = 4000


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _clean(text: str) -> str:
    """Replace lone surrogates, which cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _float(value: float) -> JSONValue:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def _int(value: int) -> JSONValue:
    if abs(value) >= 10**_MAX_INT_DIGITS:
        return f"<int with more than {_MAX_INT_DIGITS} digits>"
    return int(value)


def _datetime(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _bytes(value: bytes | bytearray | memoryview) -> str:
    raw = bytes(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(raw)} bytes: {raw[:_BYTES_PREVIEW].hex()}{'…' if len(raw) > 32 else ''}>"


def _repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {_type_name(value)}>"
    if not isinstance(text, str):
        return f"<unrepresentable {_type_name(value)}>"
    return _cut(text, MAX_REPR)


def _type_name(value: object) -> str:
    try:
        cls = type(value)
        return (
            f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__name__
        )
    except Exception:
        return "object"


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, Enum):
        key = key.value
    if isinstance(key, str | int | float | bool) or key is None:
        try:
            return str(key)
        except ValueError:  # an int too long to print
            return f"<int key with more than {_MAX_INT_DIGITS} digits>"
    return _repr(key)


class _Encoder:
    def __init__(self, max_depth: int, max_string: int, max_items: int) -> None:
        self.max_depth = max_depth
        self.max_string = max_string
        self.max_items = max_items
        self.path: set[int] = set()

    def encode(self, value: object, depth: int) -> JSONValue:
        kind = type(value)
        # Exact types first: the common case of plain details costs one lookup each.
        if kind is str:
            return _clean(_cut(value, self.max_string))  # type: ignore[arg-type]
        if value is None or kind is bool:
            return value  # type: ignore[return-value]
        if kind is int:
            return _int(value)  # type: ignore[arg-type]
        if kind is float:
            return _float(value)  # type: ignore[arg-type]
        if isinstance(value, Mapping | list | tuple | set | frozenset) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)
        ):
            if depth >= self.max_depth:
                return TOO_DEEP
            if id(value) in self.path:
                return CYCLE
            self.path.add(id(value))
            try:
                return self._container(value, depth + 1)
            finally:
                self.path.discard(id(value))
        return self._scalar(value)

    def _container(self, value: object, depth: int) -> JSONValue:
        if isinstance(value, Mapping):
            out: dict[str, JSONValue] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= self.max_items:
                    out["…"] = f"[{len(value) - index} more items]"
                    break
                out[_clean(_cut(_key(key), self.max_string))] = self.encode(item, depth)
            return out
        if dataclasses.is_dataclass(value):
            return {
                field.name: self.encode(getattr(value, field.name, None), depth)
                for field in dataclasses.fields(value)
            }
        items: Any = value
        if isinstance(value, set | frozenset):
            try:
                items = sorted(value)
            except Exception:  # mixed types do not sort; order does not matter then
                items = list(value)
        result = [self.encode(item, depth) for item in list(items)[: self.max_items]]
        if len(items) > self.max_items:
            result.append(f"[{len(items) - self.max_items} more items]")
        return result

    def _scalar(self, value: object) -> JSONValue:
        if isinstance(value, str):
            return _clean(_cut(str.__str__(value), self.max_string))
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, Enum):
            return self.encode(value.value, self.max_depth - 1)
        if isinstance(value, int):
            return _int(int(value))
        if isinstance(value, float):
            return _float(float(value))
        if isinstance(value, datetime):
            return _datetime(value)
        if isinstance(value, date | time):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, UUID | PurePath):
            return str(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return _clean(_cut(_bytes(value), self.max_string))
        if isinstance(value, BaseException):
            return {
                "type": _type_name(value),
                "message": _clean(_cut(_str(value), self.max_string)),
            }
        return _clean(_repr(value))


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return _repr(value)


def to_jsonable(
    value: object,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> JSONValue:
    """A JSON-compatible copy of ``value``, bounded in depth, string length and size."""
    try:
        return _Encoder(max_depth, max_string, max_items).encode(value, 0)
    except Exception:  # a hostile object defeated every guard: say so, do not raise
        return f"<unencodable {_type_name(value)}>"


def dumps(value: object) -> str:
    """Compact JSON text for ``value``; never raises."""
    return json.dumps(
        to_jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
