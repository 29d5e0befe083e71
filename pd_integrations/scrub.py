"""Redaction of secrets and personal data from everything that leaves the process.

Keys are matched case-insensitively, as words: ``-``, ``_``, spaces, dots and camelCase
boundaries all separate words, so ``X-CSRFToken``, ``userPassword``, ``HTTP_COOKIE`` and
``user[password]`` are caught. A sensitive name matches anywhere inside a key with the
separators removed (``access_token``, ``sessionid``); a name of four letters or fewer
(``ssn``, ``pwd``, ``auth``) must be a whole word, or ``classname`` would lose its value
and ``author`` its name.

Credentials inside strings (values, keys, summaries) are redacted wherever they appear:
HTTP auth schemes (``Bearer …``, ``Basic …``, ``Token token=…``), URL userinfo
(``scheme://user:pass@``), ``name=value`` / ``name: value`` / ``"name": "value"`` pairs
whose name is sensitive, which covers query strings, form bodies, log lines, JSON and
reprs, and secrets known by their shape whatever their name: AWS access key ids, JWTs,
Stripe secret and restricted keys, GitHub and Slack tokens, Slack webhook URLs and PEM
private-key blocks.

Scrub before cutting: text cut first could leave half a secret that no longer looks
like one. :meth:`Scrubber.to_jsonable` redacts every string before the encoder cuts
it. Text that arrives already cut is scrubbed as such: a token, JWT or
``scheme://user:pass`` right before a ``…`` (the mark of a cut, at the end of a text or
inside one built from a cut message) is redacted too, as is a private-key block that
never ends and a URL password that ends the text with its ``@host`` lost.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from .encoding import (
    _MIN_SAFE_INT,
    _SAFE_INT,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    MORE_ITEMS_KEY,
    UNREDACTED,
    JSONValue,
    _Encoder,
    encode_with,
)
from .encoding import to_jsonable as _to_jsonable

FILTERED = "[Filtered]"

# Stored as words joined by "_"; any separator (or none) matches them.
DEFAULT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "auth",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "x_api_key",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "token",
        "session",
        "csrf",
        "xsrf",
        "private_key",
        "credential",
        "routing_key",
        "integration_key",
        "signature",
        "sig",
        "jwt",
        "ssn",
        "credit_card",
        "card_number",
        "cvv",
        "cvc",
    }
)

# Names this short are common inside unrelated words, so they match whole words only.
_WHOLE_WORD_MAX = 4
# Deeper than any encoder output: anything below it is filtered rather than walked.
_MAX_DEPTH = 64
_CACHE_SIZE = 4096
_CACHE_KEY_MAX = 128
# The encoder takes a remembered text or key as it is only where it needs no cut: it is
# at most this long, and the encoder's string bound at least this.
_REMEMBERED_MAX = 256
# Dict shapes such as {"name": "Authorization", "value": "..."} (HAR, some frameworks).
_NAME_FIELDS = ("name", "key", "header", "field")
# Values of these exact types never encode to None or a boolean, which a sensitive key
# keeps: under such a key they are filtered without being encoded first.
_NEVER_FLAGS: frozenset[type] = frozenset({str, int, float, dict, list, tuple, bytes})

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[^\W\d_])(?=\d)")
_SEPARATORS = re.compile(r"[\W_]+")

_SCHEME_NAMES = ("bearer", "basic", "digest", "token", "negotiate")
_SCHEMES = "|".join(_SCHEME_NAMES)
_ANY_SCHEME = re.compile(_SCHEMES)  # on casefolded text: faster than a test per name
_AUTH_PARAMS = r'[\w\-]+=(?:"[^"\n]*"|[^\s,"]*)(?:\s*,\s*[\w\-]+=(?:"[^"\n]*"|[^\s,"]*))*'
_AUTH = re.compile(
    rf"""\b(?P<scheme>{_SCHEMES})(?P<gap>\s+)"""
    rf"""(?:(?P<params>{_AUTH_PARAMS})|(?P<cred>"[^"\n]*"|[A-Za-z0-9\-._~+/]+=*))""",
    re.IGNORECASE,
)
# An ordinary word after "Basic" or "Token" ("Token expired") is prose, not a secret.
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]{0,19}")
# RFC 3986 userinfo holds no "/", "?" or "#"; the greedy match runs to the last "@" so a
# password with an unescaped "@" is still covered.
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.\-]{0,30}://)[^\s/?#]*@", re.IGNORECASE)
# A name followed by "=" or ":"; the value is matched separately, and only when the name
# is sensitive, so "https://host/?token=x" is not swallowed as the pair "https: //…".
# A path segment is no name: "POST /auth/token: 502" keeps its status.
_PAIR_NAME = re.compile(
    r"""(?<![\w\-.\[\]/])(?P<quote>["']?)(?P<name>[\w\-.\[\]]{1,128})(?P=quote)"""
    r"""(?P<sep>\s*=\s*|\s*:\s+|(?<=["']):\s*)"""
)
_AUTH_VALUE = rf"(?i:(?:{_SCHEMES})\s+[^\s,;&]+)"
_QUOTED = r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
# After a quoted name (JSON, dict reprs): a string, a flat object, or a bare scalar.
_JSON_VALUE = re.compile(rf"""{_AUTH_VALUE}|{_QUOTED}|\{{[^{{}}]*\}}|["']?[^\s,}}\]]+""")
# After name=: query strings, form bodies, log lines, keyword reprs. The optional
# opening quote catches a value whose closing quote was cut off.
_ASSIGNED_VALUE = re.compile(rf"""{_AUTH_VALUE}|{_QUOTED}|["']?[^\s&;,#"'<>(){{}}\[\]]+""")
# After "name: " unquoted at the start of a line, as in headers and YAML: the rest of
# the line. Within a line ("invalid token: abc for user 5") only the next word, or a
# "a=1; b=2" list, so the prose around it survives.
_LINE_VALUE = re.compile(rf"""{_AUTH_VALUE}|{_QUOTED}|[^\r\n]+""")
_WORD_VALUE = re.compile(rf"""{_AUTH_VALUE}|{_QUOTED}|[^\s,;]+(?:;[ \t]*[^\s,;]+)*""")

# Secrets known by their shape, one alternative each, in one pass. Each is long enough
# (or anchored on word boundaries) that ordinary words never match, and starts with a
# fixed prefix: _SHAPE_HINT finds those several times faster than _SHAPES can reject
# text (its word-boundary assertions defeat the regex engine's prefix scan), so text
# without any of them, most text, costs only the hint.
_SHAPE_HINT = re.compile(
    r"A[KS]IA|eyJ|k_(?:live|test)_|gh[pousr]_|github_pat_|xox[abprs]-"
    r"|hooks\.slack\.com/|-----BEGIN "
)
_B64URL = r"[A-Za-z0-9_\-]"
_SHAPES = re.compile(
    r"(?P<aws>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"
    rf"|(?P<jwt>\beyJ{_B64URL}{{10,}}\.{_B64URL}{{2,}}\.{_B64URL}*(?:\.{_B64URL}*){{0,2}})"
    r"|(?P<stripe>\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,})"
    r"|(?P<github>\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,})"
    r"|(?P<slack>\bxox[abprs]-[A-Za-z0-9\-]{10,})"
    r"|(?P<hook>hooks\.slack\.com/services/[A-Za-z0-9_\-/]+)"
    # An unterminated block runs to the end: the rest of a cut key is still a secret.
    r"|(?P<pem>(?P<armor>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----)"
    r"(?s:.*?)(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z))"
)
# The characters tokens and URLs (userinfo included) are made of. A run of them is taken
# whole: it starts where the character before is not one of them and never gives any
# back, so finding every run is linear in the text, whatever the text holds.
_RUN = r"[A-Za-z0-9_\-.:/@+%~!$&'()*,;=]"
# A run that a cut ended: "…" is the mark of every cut in this library ("…", "…[truncated
# N chars]") and of most others; it may sit mid-text, as in a summary built from a cut
# exception message.
_CUT_RUN = re.compile(rf"(?<!{_RUN}){_RUN}++(?=…)")
# The run that ends the text, where a URL may have lost its "@host" to a cut unmarked.
_LAST_RUN = re.compile(rf"(?<!{_RUN}){_RUN}++\Z")
# A shape's beginning, too short for _SHAPES once cut, still a secret.
_OPEN_SHAPE = re.compile(
    r"\b(?:AKIA|ASIA|eyJ|[rs]k_(?:live|test)_|gh[pousr]_|github_pat_|xox[abprs]-)"
)
# What may follow a port number in prose ("see http://db:5432).") without being part of it.
_PORT_END = ".:;,)]'!"


def _words(key: str) -> list[str]:
    # casefold(), unlike lower(), gives each character one form whatever its context.
    return [word for word in _SEPARATORS.split(_CAMEL.sub("_", key).casefold()) if word]


def _keep(value: object) -> TypeGuard[bool | None]:
    """None and booleans say whether a secret is present, never what it is."""
    return value is None or isinstance(value, bool)


class Scrubber:
    """Replaces sensitive values with ``[Filtered]``; ``enabled=False`` leaves data as is.

    ``keys`` replaces the default key list; ``extra_keys`` adds to it.
    """

    def __init__(
        self,
        *,
        keys: Iterable[str] | None = None,
        extra_keys: Iterable[str] = (),
        enabled: bool = True,
    ) -> None:
        base = DEFAULT_SENSITIVE_KEYS if keys is None else keys
        normalised = {"_".join(_words(key)) for key in (*base, *extra_keys)}
        self.keys: frozenset[str] = frozenset(key for key in normalised if key)
        self.enabled = enabled
        compact = {key.replace("_", "") for key in self.keys}
        self._whole_words = frozenset(key for key in compact if len(key) <= _WHOLE_WORD_MAX)
        self._parts = tuple(sorted(key for key in compact if len(key) > _WHOLE_WORD_MAX))
        # One search for any of the names, rather than one substring test per name.
        self._any_key = re.compile("|".join(map(re.escape, sorted(compact)))) if compact else None
        self._cache: dict[str, bool] = {}
        self._texts: dict[str, str] = {}
        # What to_jsonable makes of short texts (scrubbed, valid UTF-8, whole), and of
        # short keys whose values are not redacted (their names).
        self._encoded: dict[str, str] = {}
        self._names: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Scrubber(keys={sorted(self.keys)!r}, enabled={self.enabled!r})"

    def is_sensitive(self, key: str) -> bool:
        """Whether values under ``key`` are redacted."""
        try:
            known = self._cache.get(key)
            if known is None:
                words = _words(key)
                compact = "".join(words)
                known = not self._whole_words.isdisjoint(words) or any(
                    part in compact for part in self._parts
                )
                if len(key) <= _CACHE_KEY_MAX and len(self._cache) < _CACHE_SIZE:
                    self._cache[key] = known
        except Exception:  # not a string after all: there is no name to judge
            return False
        return known

    def scrub_text(self, text: str) -> str:
        """Redact credentials embedded in a string."""
        return self._scrubbed(text) if self.enabled else text

    def _scrubbed(self, text: str) -> str:
        """:meth:`scrub_text` whether enabled or not."""
        # Keys and short values repeat from one alert to the next ("order_id", "POST"):
        # they are checked once. Bounded like the key cache; long texts are never kept.
        short = len(text) <= _CACHE_KEY_MAX
        if short:
            known = self._texts.get(text)
            if known is not None:
                return known
        scrubbed = self._scrub_text(text)
        if short and len(self._texts) < _CACHE_SIZE:
            self._texts[text] = scrubbed
        return scrubbed

    def _scrub_text(self, text: str) -> str:
        try:
            # Cheap substring tests first: most strings hold no credential at all, and
            # the case-insensitive patterns are slow to run over every one of them.
            lowered = text.casefold()
            if "://" in text:
                text = _USERINFO.sub(rf"\1{FILTERED}@", text)
            if _ANY_SCHEME.search(lowered):
                text = _AUTH.sub(self._auth, text)
            if _SHAPE_HINT.search(text):
                text = _SHAPES.sub(_shape, text)
            if ("=" in text or ":" in text) and self._mentions_key(lowered):
                text = self._pairs(text)
            if "…" in text:
                text = _CUT_RUN.sub(_open_at_cut, text)
            if "://" in text:
                text = _LAST_RUN.sub(_open_at_end, text, count=1)
        except Exception:  # safe side: a string that could not be checked is not sent
            return FILTERED
        return text

    def scrub(self, value: JSONValue) -> JSONValue:
        """A scrubbed copy of a JSON-compatible value; the input is never modified."""
        if not self.enabled:
            return value
        try:
            return self._scrub(value, 0, set())
        except Exception:  # safe side again
            return FILTERED

    def to_jsonable(
        self,
        value: object,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_string: int = DEFAULT_MAX_STRING,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> JSONValue:
        """:func:`~pd_integrations.encoding.to_jsonable`, then :meth:`scrub`, except that
        every string and key is scrubbed *before* the encoder cuts it. Never raises.

        One walk: the key rules judge each name and value as the encoder produces them
        (the value under a sensitive key is not even encoded, unless it might encode to
        ``None`` or a boolean, which are kept).
        """
        if not self.enabled:
            return _to_jsonable(
                value, max_depth=max_depth, max_string=max_string, max_items=max_items
            )
        return encode_with(
            functools.partial(_ScrubbingEncoder, self),
            value,
            max_depth=max_depth,
            max_string=max_string,
            max_items=max_items,
        )

    def _named_value(self, value: dict[str, JSONValue]) -> str | None:
        """``"value"`` when the dict is a name/value record for a sensitive name."""
        if "value" not in value:
            return None
        for field in _NAME_FIELDS:
            name = value.get(field)
            if isinstance(name, str) and self.is_sensitive(name):
                return "value"
        return None

    def _mentions_key(self, lowered: str) -> bool:
        if self._any_key is None:
            return False
        return self._any_key.search(_SEPARATORS.sub("", lowered)) is not None

    def _auth(self, match: re.Match[str]) -> str:
        cred = match["cred"]
        if cred is not None and match["scheme"].lower() != "bearer" and _PLAIN_WORD.fullmatch(cred):
            return match[0]
        return f"{match['scheme']}{match['gap']}{FILTERED}"

    def _pairs(self, text: str) -> str:
        parts: list[str] = []
        done = 0
        position = 0
        while (found := _PAIR_NAME.search(text, position)) is not None:
            position = found.end()
            if not self.is_sensitive(found["name"]):
                continue
            if found["quote"]:
                pattern = _JSON_VALUE
            elif "=" in found["sep"]:
                pattern = _ASSIGNED_VALUE
            else:
                start = found.start()
                line = text[text.rfind("\n", 0, start) + 1 : start]
                pattern = _WORD_VALUE if line.strip() else _LINE_VALUE
            value = pattern.match(text, position)
            if value is None:
                continue
            raw = value[0]
            # Quoted stays quoted (and JSON values become strings), so JSON or a repr
            # inside the string still parses.
            quote = found["quote"] or (raw[0] if raw[0] in "\"'" and raw[-1] == raw[0] else "")
            parts += (text[done:position], f"{quote}{FILTERED}{quote}")
            done = position = value.end()
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _scrub(self, value: JSONValue, depth: int, active: set[int]) -> JSONValue:
        if isinstance(value, str):
            return self.scrub_text(value)
        if not isinstance(value, dict | list | tuple):
            return value
        if depth >= _MAX_DEPTH or id(value) in active:
            return FILTERED
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return self._mapping(value, depth + 1, active)
            return self._sequence(value, depth + 1, active)
        finally:
            active.discard(id(value))

    def _mapping(self, value: dict[str, JSONValue], depth: int, active: set[int]) -> JSONValue:
        named = self._named_value(value)
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(key)
            if (self.is_sensitive(name) or key == named) and not _keep(item):
                out[key] = FILTERED
            else:
                if isinstance(key, str):
                    key = self.scrub_text(key)
                out[key] = self._scrub(item, depth, active)
        return out

    def _sequence(
        self, value: list[JSONValue] | tuple[JSONValue, ...], depth: int, active: set[int]
    ) -> JSONValue:
        # A (name, value) pair, as headers often are: the name decides about the value.
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and self.is_sensitive(value[0])
            and not _keep(value[1])
        ):
            return [value[0], FILTERED]
        return [self._scrub(item, depth, active) for item in value]


class _ScrubbingEncoder(_Encoder):
    """The encoder, with a scrubber's key rules applied in the same walk.

    What comes out is what encoding with ``scrub_text`` as the redactor and then a
    :meth:`Scrubber.scrub` of the result judging only keys gave: every rule judges the
    encoded form (the scrubbed, cut and deduplicated name; the encoded value), and a
    container nested :data:`_MAX_DEPTH` deep is filtered.

    The scrubber remembers what short texts encode to, and the names of short keys
    whose values are kept, so a plain dict of familiar keys and texts (what most alerts
    carry) costs a look-up per entry.
    """

    __slots__ = ("encoded", "names", "scrubber")

    def __init__(self, scrubber: Scrubber, max_depth: int, max_string: int, max_items: int) -> None:
        super().__init__(max_depth, max_string, max_items, scrubber._scrubbed)
        self.scrubber = scrubber
        self.encoded = scrubber._encoded
        self.names = scrubber._names

    def text(self, value: str, limit: int | None = None) -> str:
        limit = self.max_string if limit is None else limit
        # Only short texts are looked up: hashing a long one would read all of it.
        if limit < _REMEMBERED_MAX or len(value) > _CACHE_KEY_MAX:
            return self.redacted(value, limit)
        known = self.encoded.get(value)
        if known is not None:
            return known
        text = self.redacted(value, limit)
        _remember(self.encoded, value, text)
        return text

    def mapping(self, value: Mapping[object, object], depth: int) -> JSONValue:  # type: ignore[override]
        if depth > _MAX_DEPTH:
            return FILTERED
        out: dict[str, JSONValue] = {}
        labels: dict[str, JSONValue] | None = None
        if (
            type(value) is dict
            and len(value) <= self.max_items
            and self.max_string >= _REMEMBERED_MAX
        ):
            names = self.names
            encoded = self.encoded
            for key, item in value.items():
                name = names.get(key) if type(key) is str else None
                if name is None or name in out:
                    labels = self.put(out, key, item, depth, labels)
                    continue
                kind = type(item)
                if kind is str:
                    known = encoded.get(item) if len(item) <= _CACHE_KEY_MAX else None
                    if known is not None:
                        out[name] = known
                        continue
                elif kind is int and _MIN_SAFE_INT < item < _SAFE_INT:
                    out[name] = item
                    continue
                out[name] = self.encode(item, depth)
        else:
            for index, (key, item) in enumerate(value.items()):
                if index >= self.max_items:
                    out[MORE_ITEMS_KEY] = self.more(value, index)
                    break
                labels = self.put(out, key, item, depth, labels)
        if "value" in out and not _keep(out["value"]):
            for field in _NAME_FIELDS:
                label = labels[field] if labels and field in labels else out.get(field)
                if isinstance(label, str) and self.scrubber.is_sensitive(label):
                    out["value"] = FILTERED
                    break
        return out

    def put(
        self,
        out: dict[str, JSONValue],
        key: object,
        item: object,
        depth: int,
        labels: dict[str, JSONValue] | None,
    ) -> dict[str, JSONValue] | None:
        """Add one entry of a mapping to ``out``, named, judged and encoded by the rules.

        Returns ``labels``, the encoded values of the name fields a sensitive name
        filtered (the name/value rule judges them as they would have been), with this
        entry's if it is one.
        """
        scrubber = self.scrubber
        redacted: str | None = None
        if type(key) is str:
            redacted = self.redacted(key, self.max_string)
            name = self.unique(redacted, key, out)
        else:
            name = self.unique(self.key(key), key, out)
        if not scrubber.is_sensitive(name):
            if name is redacted and self.max_string >= _REMEMBERED_MAX:
                _remember(self.names, key, name)  # not renamed by unique(): its own name
            out[name] = self.encode(item, depth)
        elif _keep(item):
            out[name] = item
        elif type(item) in _NEVER_FLAGS and name not in _NAME_FIELDS:
            out[name] = FILTERED
        else:
            encoded = self.encode(item, depth)
            if name in _NAME_FIELDS:
                labels = {} if labels is None else labels
                labels[name] = encoded
            out[name] = encoded if _keep(encoded) else FILTERED
        return labels

    def sequence(self, value: list[object] | tuple[object, ...], depth: int) -> JSONValue:  # type: ignore[override]
        if depth > _MAX_DEPTH:
            return FILTERED
        return self.pair(super().sequence(value, depth))

    def unordered(self, value: set[Any] | frozenset[Any], depth: int) -> JSONValue:  # type: ignore[override]
        if depth > _MAX_DEPTH:
            return FILTERED
        return self.pair(super().unordered(value, depth))

    def dataclass(self, value: object, depth: int) -> JSONValue:  # type: ignore[override]
        if depth > _MAX_DEPTH:
            return FILTERED
        return self.judged(super().dataclass(value, depth))

    def other(self, value: object, depth: int) -> JSONValue:
        encoded = super().other(value, depth)
        if type(encoded) is dict and isinstance(value, BaseException):  # type and message
            return FILTERED if depth >= _MAX_DEPTH else self.judged(encoded)
        return encoded

    def pair(self, out: list[JSONValue]) -> list[JSONValue]:
        """A (name, value) pair, as headers often are: the name decides about the value."""
        if (
            len(out) == 2
            and isinstance(out[0], str)
            and not _keep(out[1])
            and self.scrubber.is_sensitive(out[0])
        ):
            out[1] = FILTERED
        return out

    def judged(self, out: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """The key rules over a mapping already encoded (a dataclass, an exception)."""
        scrubber = self.scrubber
        named = scrubber._named_value(out)
        for name, item in out.items():
            if (name == named or scrubber.is_sensitive(name)) and not _keep(item):
                out[name] = FILTERED
        return out


def _remember(memory: dict[str, str], text: object, encoded: str) -> None:
    """Remember what ``text`` encoded to under a bound of at least
    :data:`_REMEMBERED_MAX` if it is what it encodes to under any such bound: short
    enough that the window never cut ``text`` and the bound never cut ``encoded``, and
    scrubbed (the redactor did not fail). Bounded: once full, nothing more is kept."""
    if (
        type(text) is str
        and len(text) <= _CACHE_KEY_MAX
        and len(encoded) <= _REMEMBERED_MAX
        and encoded != UNREDACTED
        and len(memory) < _CACHE_SIZE
    ):
        memory[text] = encoded


def _shape(match: re.Match[str]) -> str:
    if match["armor"] is not None:
        # Keep the armour lines: the on-call learns what leaked, not the key itself.
        block = match[0]
        end = block.rfind("-----END ")
        return f"{match['armor']}{FILTERED}{block[end:] if end > 0 else ''}"
    if match["hook"] is not None:
        return f"hooks.slack.com/services/{FILTERED}"
    return FILTERED


def _open_at_cut(match: re.Match[str]) -> str:
    return _open_run(match[0], cut=True)


def _open_at_end(match: re.Match[str]) -> str:
    return _open_run(match[0], cut=False)


def _open_run(run: str, *, cut: bool) -> str:
    """Redact what a cut left open at the end of ``run``: a shaped secret's beginning,
    or a ``scheme://user:pass`` whose ``@host`` is gone.

    Without a cut mark, only the password of a URL that ends the text is redacted, and
    only if it is no port number (``http://db:5432`` is a host and port).
    """
    shape = _OPEN_SHAPE.search(run) if cut else None
    if shape is not None:
        return f"{run[: shape.start()]}{FILTERED}"
    scheme = run.rfind("://")
    if scheme <= 0 or not run[scheme - 1].isalnum():
        return run
    authority = run[scheme + 3 :]
    _, _, password = authority.partition(":")
    if not password or "/" in authority or "@" in authority:
        return run
    if not cut and password.rstrip(_PORT_END).isdigit():
        return run
    return f"{run[: scheme + 3]}{FILTERED}"


DEFAULT_SCRUBBER = Scrubber()
