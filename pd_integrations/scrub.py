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

import re
from collections.abc import Iterable

from .encoding import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    JSONValue,
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
# Dict shapes such as {"name": "Authorization", "value": "..."} (HAR, some frameworks).
_NAME_FIELDS = ("name", "key", "header", "field")

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


def _keep(value: object) -> bool:
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
        if not self.enabled:
            return text
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
            return self._scrub(value, 0, set(), texts=True)
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
        every string and key is scrubbed *before* the encoder cuts it. Never raises."""
        if not self.enabled:
            return _to_jsonable(
                value, max_depth=max_depth, max_string=max_string, max_items=max_items
            )
        encoded = _to_jsonable(
            value,
            max_depth=max_depth,
            max_string=max_string,
            max_items=max_items,
            redact=self.scrub_text,
        )
        try:
            # The strings are done; what is left is judging values by their keys.
            return self._scrub(encoded, 0, set(), texts=False)
        except Exception:
            return FILTERED

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

    def _scrub(self, value: JSONValue, depth: int, active: set[int], *, texts: bool) -> JSONValue:
        if isinstance(value, str):
            return self.scrub_text(value) if texts else value
        if not isinstance(value, dict | list | tuple):
            return value
        if depth >= _MAX_DEPTH or id(value) in active:
            return FILTERED
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return self._mapping(value, depth + 1, active, texts)
            return self._sequence(value, depth + 1, active, texts)
        finally:
            active.discard(id(value))

    def _mapping(
        self, value: dict[str, JSONValue], depth: int, active: set[int], texts: bool
    ) -> JSONValue:
        named = self._named_value(value)
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(key)
            if (self.is_sensitive(name) or key == named) and not _keep(item):
                out[key] = FILTERED
            else:
                if texts and isinstance(key, str):
                    key = self.scrub_text(key)
                out[key] = self._scrub(item, depth, active, texts=texts)
        return out

    def _named_value(self, value: dict[str, JSONValue]) -> str | None:
        """``"value"`` when the dict is a name/value record for a sensitive name."""
        if "value" not in value:
            return None
        for field in _NAME_FIELDS:
            name = value.get(field)
            if isinstance(name, str) and self.is_sensitive(name):
                return "value"
        return None

    def _sequence(
        self,
        value: list[JSONValue] | tuple[JSONValue, ...],
        depth: int,
        active: set[int],
        texts: bool,
    ) -> JSONValue:
        # A (name, value) pair, as headers often are: the name decides about the value.
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and self.is_sensitive(value[0])
            and not _keep(value[1])
        ):
            return [value[0], FILTERED]
        return [self._scrub(item, depth, active, texts=texts) for item in value]


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
