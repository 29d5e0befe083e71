"""Stable exception fingerprints: the same bug is one dedup key, two bugs are two.

A fingerprint is the exception's type plus the *application* frames where it was
raised, identified by module and function name, never by line number: an unrelated
edit above the bug must not open a second incident, and a key computed on one host must
equal the key computed on another (so absolute paths are never part of it). Frames of
installed libraries, the standard library, frameworks and pd_integrations itself are
skipped, because the same library frame is on the stack of every unrelated bug; when no
application frame exists at all the innermost frames are used instead.

Everything here runs only when an alert is about to fire, never on a healthy request.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import CodeType, TracebackType

DEFAULT_DEPTH = 2
DEFAULT_STACK_LIMIT = 10
MAX_STACK_LIMIT = 100
DEFAULT_MAX_CHAIN = 3
DIGEST_LENGTH = 16
MAX_MESSAGE = 1000

# Framework and server packages whose frames wrap every request: in an editable install
# they live outside site-packages, so they are recognised by module name as well.
DEFAULT_LIBRARY_MODULES: tuple[str, ...] = (
    "pd_integrations",
    "starlette",
    "fastapi",
    "anyio",
    "sniffio",
    "flask",
    "werkzeug",
    "django",
    "asgiref",
    "uvicorn",
    "gunicorn",
    "hypercorn",
    "daphne",
    "h11",
    "httpcore",
    "httpx",
    "blinker",
    "pydantic",
    "_pytest",
    "pytest",
    "pluggy",
)

_LIBRARY_DIR_NAMES = ("site-packages", "dist-packages")
_CACHE_LIMIT = 4096

# What a code object contributes to a fingerprint, keyed by ``id(code)``: the code itself
# (held, so its id cannot be reused while the entry lives), the module it ran in (the
# same code may run under other globals), ``Frame.ident``, ``Frame.in_app``, and the
# display path and function name ``frames()`` needs.
_CodeEntry = tuple[CodeType, "str | None", str, bool, str, str]
# A fingerprint's canonical form: per exception of the chain, its type name and the
# idents of its key frames. The digest is a pure function of it.
_Canonical = tuple[tuple[str, ...], ...]

InAppPredicate = Callable[[str | None, str], bool]
"""``(module name or None, file name) -> bool``: is this frame application code?"""


@dataclass(frozen=True, slots=True)
class Frame:
    """One traceback frame, in the form fingerprints and stacks use."""

    module: str | None
    function: str
    filename: str
    """Relative to the ``sys.path`` entry it was imported from: the same on every host."""
    lineno: int
    in_app: bool

    @property
    def ident(self) -> str:
        """``module:function``; the line number is left out on purpose."""
        where = self.module if self.module and self.module != "__main__" else self.filename
        return f"{where}:{self.function}"

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} in {self.function}"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The identity of an error: ``digest`` goes into dedup keys, ``readable`` into details."""

    digest: str
    readable: str
    exception_type: str


def type_name(exc: BaseException | type[BaseException]) -> str:
    """``package.module.Class``, or just ``Class`` for builtins."""
    cls = exc if isinstance(exc, type) else type(exc)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in (None, "builtins", "__main__") else f"{module}.{qualname}"


def message(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """``str(exc)``, bounded, and never raising (a broken ``__str__`` must not hide the error).

    Calls ``__str__`` exactly once; callers read it once per alert and reuse the text.
    The result is a plain ``str`` even when ``__str__`` returns a subclass, whose own
    ``strip`` or ``__len__`` could otherwise raise later, outside this guard.
    """
    try:
        text = str.__str__(str(exc))
    except Exception:
        text = f"<{type(exc).__name__}: unprintable message>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def exception_chain(exc: BaseException, limit: int = DEFAULT_MAX_CHAIN) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first, as Python's traceback shows it."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < limit:
        chain.append(current)
        seen.add(id(current))
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


def _walk(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _stdlib_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib")}
    return tuple(sorted(_norm(d) + os.sep for d in dirs if d))


def _under_prefix(module: str, prefixes: Iterable[str]) -> int:
    """Length of the longest prefix naming ``module`` or a package containing it; 0 if none."""
    best = 0
    for prefix in prefixes:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
            best = len(prefix)
    return best


class Fingerprinter:
    """Computes fingerprints and trimmed stacks; configure what counts as application code.

    ``in_app_include`` and ``in_app_exclude`` are module prefixes (``"myapp"`` matches
    ``myapp`` and ``myapp.views``); the longest matching prefix decides. When
    ``in_app_include`` is given, modules it does not name are library code; without it,
    everything outside site-packages, the standard library and the known frameworks is
    application code. ``is_in_app`` replaces these rules entirely.

    ``depth`` is how many application frames, innermost first, identify an error: 2
    means the function that raised and its caller, so a helper shared by two views
    reached through the same service is one incident, while two unrelated callers of a
    generic ``fail()`` helper stay apart.
    """

    def __init__(
        self,
        *,
        in_app_include: Iterable[str] = (),
        in_app_exclude: Iterable[str] = (),
        is_in_app: InAppPredicate | None = None,
        depth: int = DEFAULT_DEPTH,
        max_chain: int = DEFAULT_MAX_CHAIN,
        library_modules: Iterable[str] = DEFAULT_LIBRARY_MODULES,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        if max_chain < 1:
            raise ValueError("max_chain must be at least 1")
        self.in_app_include = tuple(p.strip(".") for p in in_app_include if p.strip("."))
        self.in_app_exclude = tuple(p.strip(".") for p in in_app_exclude if p.strip("."))
        self.library_modules = tuple(library_modules)
        self.depth = depth
        self.max_chain = max_chain
        self._predicate = is_in_app
        self._stdlib = _stdlib_dirs()
        # Classifying a file costs a few string operations; an error storm repeats the
        # same few files thousands of times, so results are cached (bounded).
        self._in_app_cache: dict[tuple[str | None, str], bool] = {}
        self._display_cache: dict[str, str] = {}
        # The storm path: a repeated error walks the same code objects and ends in the
        # same canonical form, so neither frames nor digests are recomputed. Both caches
        # are emptied when full (a rare rebuild beats refusing new entries forever), and
        # plain dict reads and writes are atomic, so threads need no lock.
        self._code_cache: dict[int, _CodeEntry] = {}
        self._fingerprint_cache: dict[_Canonical, Fingerprint] = {}

    # -- classification -----------------------------------------------------------------

    def is_in_app(self, module: str | None, filename: str) -> bool:
        """Is a frame of ``module`` (its ``__name__``) in ``filename`` application code?"""
        key = (module, filename)
        known = self._in_app_cache.get(key)
        if known is None:
            known = self._classify(module, filename)
            if len(self._in_app_cache) < _CACHE_LIMIT:
                self._in_app_cache[key] = known
        return known

    def _classify(self, module: str | None, filename: str) -> bool:
        if self._predicate is not None:
            return bool(self._predicate(module, filename))
        if module:
            included = _under_prefix(module, self.in_app_include)
            excluded = _under_prefix(module, self.in_app_exclude)
            if included or excluded:
                return included > excluded
        if self.in_app_include:
            return False
        if filename.startswith("<frozen") or filename.startswith("<built-in"):
            return False
        if module:
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or _under_prefix(module, self.library_modules):
                return False
        path = _norm(filename)
        parts = path.split(os.sep)
        if any(name in parts for name in _LIBRARY_DIR_NAMES):
            return False
        return not path.startswith(self._stdlib)

    def display_path(self, filename: str) -> str:
        """``filename`` relative to the longest ``sys.path`` entry holding it."""
        shown = self._display_cache.get(filename)
        if shown is None:
            shown = self._relative(filename)
            if len(self._display_cache) < _CACHE_LIMIT:
                self._display_cache[filename] = shown
        return shown

    @staticmethod
    def _relative(filename: str) -> str:
        if filename.startswith("<"):
            return filename
        path = _norm(filename)
        best = ""
        for entry in sys.path:
            root = _norm(entry or os.curdir)
            root = root if root.endswith(os.sep) else root + os.sep
            if path.startswith(root) and len(root) > len(best):
                best = root
        # Outside every import root: the file name alone still tells a reader where to look
        # and never leaks a home directory.
        relative = path[len(best) :] if best else os.path.basename(path)
        return relative.replace(os.sep, "/")

    # -- frames -------------------------------------------------------------------------

    def _code_entry(self, code: CodeType, module: str | None) -> _CodeEntry:
        """What ``code`` run as ``module`` contributes to frames and fingerprints (cached)."""
        cache = self._code_cache
        entry = cache.get(id(code))
        if entry is not None and entry[0] is code and entry[1] == module:
            return entry
        filename = self.display_path(code.co_filename)
        function = getattr(code, "co_qualname", code.co_name)
        where = module if module and module != "__main__" else filename
        entry = (
            code,
            module,
            f"{where}:{function}",
            self.is_in_app(module, code.co_filename),
            filename,
            function,
        )
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[id(code)] = entry
        return entry

    def frames(self, exc: BaseException) -> list[Frame]:
        """The frames of ``exc``'s traceback, outermost first."""
        out: list[Frame] = []
        for tb in _walk(exc.__traceback__):
            frame = tb.tb_frame
            module = frame.f_globals.get("__name__")
            entry = self._code_entry(frame.f_code, module if isinstance(module, str) else None)
            out.append(Frame(entry[1], entry[5], entry[4], tb.tb_lineno, entry[3]))
        return out

    def key_frames(self, exc: BaseException) -> list[Frame]:
        """The frames that identify ``exc``: the innermost application frames.

        Without any application frame (an error inside a library or the framework), the
        innermost frames of any kind are used, so such errors still group stably.
        """
        frames = self.frames(exc)
        app = [f for f in frames if f.in_app]
        return (app or frames)[-self.depth :]

    def _key_idents(self, exc: BaseException) -> tuple[str, ...]:
        """``ident`` of each of :meth:`key_frames`, without building any :class:`Frame`."""
        # The hottest loop of a storm: the cache hit is inlined (a call per frame costs
        # as much as the rest of the loop body).
        cache = self._code_cache
        entries: list[_CodeEntry] = []
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            code = frame.f_code
            module = frame.f_globals.get("__name__")
            entry = cache.get(id(code))
            if entry is None or entry[0] is not code or entry[1] != module:
                entry = self._code_entry(code, module if isinstance(module, str) else None)
            entries.append(entry)
            tb = tb.tb_next
        depth = self.depth
        idents: list[str] = []
        for entry in reversed(entries):  # application frames are mostly innermost
            if entry[3]:
                idents.append(entry[2])
                if len(idents) == depth:
                    break
        if not idents:
            return tuple(entry[2] for entry in entries[-depth:])
        idents.reverse()
        return tuple(idents)

    # -- fingerprints and stacks --------------------------------------------------------

    def fingerprint(self, exc: BaseException) -> Fingerprint:
        """Type plus application frames of ``exc`` and of what it was raised from."""
        canonical = tuple(
            (type_name(link), *self._key_idents(link))
            for link in exception_chain(exc, self.max_chain)
        )
        cache = self._fingerprint_cache
        known = cache.get(canonical)
        if known is None:
            known = _digest(canonical, type_name(exc))
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[canonical] = known
        return known

    def stack(self, exc: BaseException, limit: int = DEFAULT_STACK_LIMIT) -> list[str]:
        """The innermost ``limit`` frames as ``"file:line in function"``, outermost first."""
        limit = max(1, min(limit, MAX_STACK_LIMIT))
        return [str(frame) for frame in self.frames(exc)[-limit:]]

    def causes(self, exc: BaseException) -> list[str]:
        """``"Type: message at file:line in function"`` for each exception ``exc`` came from."""
        out = []
        for link in exception_chain(exc, self.max_chain)[1:]:
            frames = self.frames(link)
            where = f" at {frames[-1]}" if frames else ""
            out.append(f"{type_name(link)}: {message(link, 200)}{where}")
        return out


def _digest(canonical: _Canonical, exception_type: str) -> Fingerprint:
    text = "\n".join(name + "@" + ";".join(idents) for name, *idents in canonical)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    readable = (
        f"{name} at {' > '.join(idents)}" if idents else name for name, *idents in canonical
    )
    return Fingerprint(
        digest=digest[:DIGEST_LENGTH],
        readable="; caused by ".join(readable),
        exception_type=exception_type,
    )


DEFAULT_FINGERPRINTER = Fingerprinter()


def fingerprint(exc: BaseException) -> Fingerprint:
    """The fingerprint of ``exc`` with the default rules for application frames."""
    return DEFAULT_FINGERPRINTER.fingerprint(exc)


def trimmed_stack(exc: BaseException, limit: int = DEFAULT_STACK_LIMIT) -> list[str]:
    """The innermost ``limit`` frames of ``exc`` as ``"file:line in function"`` strings."""
    return DEFAULT_FINGERPRINTER.stack(exc, limit)
