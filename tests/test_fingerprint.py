from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from pd_integrations import fingerprint as fingerprint_module
from pd_integrations.fingerprint import (
    Fingerprinter,
    exception_chain,
    fingerprint,
    message,
    trimmed_stack,
    type_name,
)

LIBRARY_FILE = "/opt/venv/lib/python3.11/site-packages/somelib/core.py"


def load(source: str, filename: str, module: str) -> dict[str, Any]:
    """Run ``source`` as if it were the module ``module`` in ``filename``."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


VIEWS = """
def checkout():
    return charge(0)

def charge(amount):
    return 100 / amount
"""


def test_line_numbers_do_not_change_the_fingerprint() -> None:
    before = load(VIEWS, "/srv/app/myapp/views.py", "myapp.views")
    after = load("\n\n\n# a comment\n" + VIEWS, "/srv/app/myapp/views.py", "myapp.views")
    first = raised(before["checkout"])
    second = raised(after["checkout"])
    assert fingerprint(first) == fingerprint(second)
    # The stacks do show the different lines: only the key ignores them.
    assert trimmed_stack(first) != trimmed_stack(second)


def test_the_same_code_on_another_host_has_the_same_fingerprint() -> None:
    here = load(VIEWS, "/srv/app/myapp/views.py", "myapp.views")
    there = load(VIEWS, "/home/deploy/releases/42/myapp/views.py", "myapp.views")
    assert fingerprint(raised(here["checkout"])).digest == (
        fingerprint(raised(there["checkout"])).digest
    )


def test_different_bugs_have_different_fingerprints() -> None:
    views = load(
        """
def checkout():
    raise KeyError("cart")

def profile():
    raise KeyError("user")

def settings():
    raise ValueError("bad")
""",
        "/srv/app/myapp/views.py",
        "myapp.views",
    )
    checkout = fingerprint(raised(views["checkout"]))
    profile = fingerprint(raised(views["profile"]))
    settings = fingerprint(raised(views["settings"]))
    assert len({checkout.digest, profile.digest, settings.digest}) == 3
    # The message is not part of the key: "cart" and "cart 2" are the same bug.
    again = load(
        'def checkout():\n    raise KeyError("cart 2")\n', "/srv/app/myapp/views.py", "myapp.views"
    )
    assert fingerprint(raised(again["checkout"])).digest == checkout.digest


def test_digest_and_readable_form() -> None:
    views = load(VIEWS, "/srv/app/myapp/views.py", "myapp.views")
    fp = fingerprint(raised(views["checkout"]))
    assert re.fullmatch(r"[0-9a-f]{16}", fp.digest)
    assert fp.exception_type == "ZeroDivisionError"
    assert fp.readable == "ZeroDivisionError at myapp.views:checkout > myapp.views:charge"


def test_library_frames_are_skipped() -> None:
    lib = load(
        "def parse(text):\n    return int(text)\n\ndef load(text):\n    return parse(text)\n",
        LIBRARY_FILE,
        "somelib.core",
    )
    app = load(
        "def view(text, lib):\n    return lib(text)\n", "/srv/app/myapp/views.py", "myapp.views"
    )
    exc = raised(lambda: app["view"]("x", lib["load"]))
    fingerprinter = Fingerprinter(depth=3)
    frames = fingerprinter.frames(exc)
    assert [f.in_app for f in frames][-3:] == [True, False, False]
    key = fingerprinter.key_frames(exc)
    # Only application frames, however deep the depth: this test function and the view.
    assert all(f.in_app for f in key)
    assert key[-1].ident == "myapp.views:view"


def test_without_application_frames_the_innermost_frames_are_used() -> None:
    lib = load(
        "def outer():\n    return inner()\n\ndef inner():\n    raise RuntimeError('x')\n",
        LIBRARY_FILE,
        "somelib.core",
    )
    exc = raised(lib["outer"])
    fingerprinter = Fingerprinter(in_app_include=["myapp"])
    assert [f.ident for f in fingerprinter.key_frames(exc)] == [
        "somelib.core:outer",
        "somelib.core:inner",
    ]
    assert fingerprinter.fingerprint(exc).readable.endswith("somelib.core:inner")


def test_in_app_include_and_exclude() -> None:
    fp = Fingerprinter(in_app_include=["myapp"], in_app_exclude=["myapp.vendor"])
    assert fp.is_in_app("myapp", "/srv/myapp/__init__.py")
    assert fp.is_in_app("myapp.views", "/srv/myapp/views.py")
    assert not fp.is_in_app("myapp.vendor.six", "/srv/myapp/vendor/six.py")
    assert not fp.is_in_app("myapplication", "/srv/myapplication.py")
    assert not fp.is_in_app("other", "/srv/other.py")
    # An application installed into site-packages is still the application when named.
    assert fp.is_in_app("myapp.models", "/usr/lib/python3/site-packages/myapp/models.py")

    default = Fingerprinter()
    assert default.is_in_app("shop.views", "/srv/shop/views.py")
    assert not default.is_in_app("somelib.core", LIBRARY_FILE)
    assert not default.is_in_app("json.decoder", "/usr/lib/python3.11/json/decoder.py")
    assert not default.is_in_app("pd_integrations.monitor", "/src/pd_integrations/monitor.py")
    assert not default.is_in_app("starlette.routing", "/src/starlette/routing.py")
    assert not default.is_in_app(None, "<frozen importlib._bootstrap>")

    custom = Fingerprinter(is_in_app=lambda module, filename: filename.endswith("views.py"))
    assert custom.is_in_app(None, "/x/views.py")
    assert not custom.is_in_app("shop.models", "/x/models.py")


def test_chained_exceptions_count() -> None:
    views = load(
        """
class ServiceError(Exception):
    pass

def call(inner):
    try:
        inner()
    except Exception as exc:
        raise ServiceError("upstream failed") from exc

def timeout():
    raise TimeoutError("slow")

def refused():
    raise ConnectionRefusedError("down")
""",
        "/srv/app/myapp/client.py",
        "myapp.client",
    )
    via_timeout = raised(lambda: views["call"](views["timeout"]))
    via_refused = raised(lambda: views["call"](views["refused"]))
    assert [type(e).__name__ for e in exception_chain(via_timeout)] == [
        "ServiceError",
        "TimeoutError",
    ]
    # One wrapper, two root causes: two incidents.
    assert fingerprint(via_timeout).digest != fingerprint(via_refused).digest
    assert fingerprint(via_timeout).digest == (
        fingerprint(raised(lambda: views["call"](views["timeout"]))).digest
    )
    assert "caused by TimeoutError" in fingerprint(via_timeout).readable
    (cause,) = Fingerprinter().causes(via_timeout)
    assert cause.startswith("TimeoutError: slow at ")
    assert "in timeout" in cause


def test_suppressed_context_is_ignored() -> None:
    def hide() -> None:
        try:
            raise KeyError("internal")
        except KeyError:
            raise ValueError("public") from None

    assert len(exception_chain(raised(hide))) == 1


def test_chain_is_bounded_and_cycle_safe() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert exception_chain(a) == [a, b]
    deep: BaseException = ValueError("0")
    for i in range(1, 10):
        outer = ValueError(str(i))
        outer.__cause__ = deep
        deep = outer
    assert len(exception_chain(deep, limit=3)) == 3


def test_trimmed_stack_is_bounded_and_readable() -> None:
    views = load(
        "def recurse(n):\n    if n == 0:\n        raise RuntimeError('bottom')\n"
        "    return recurse(n - 1)\n",
        "/srv/app/myapp/deep.py",
        "myapp.deep",
    )
    exc = raised(lambda: views["recurse"](40))
    stack = trimmed_stack(exc, limit=5)
    assert len(stack) == 5
    assert all(re.fullmatch(r"\S+:\d+ in \S+", line) for line in stack)
    assert stack[-1].endswith(":3 in recurse")
    assert len(trimmed_stack(exc, limit=10_000)) <= 100
    # Recursion depth does not change the key: the innermost frames are the same.
    assert fingerprint(exc) == fingerprint(raised(lambda: views["recurse"](3)))


def test_paths_are_shown_relative_to_their_import_root() -> None:
    fp = Fingerprinter()
    assert fp.display_path(__file__) == "tests/test_fingerprint.py"
    assert fp.display_path("/nowhere/on/sys/path/thing.py") == "thing.py"
    assert fp.display_path("<string>") == "<string>"


def test_an_exception_never_raised_has_a_fingerprint() -> None:
    fp = fingerprint(ValueError("never raised"))
    assert fp.readable == "ValueError"
    assert trimmed_stack(ValueError()) == []


def test_names_and_messages() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert type_name(KeyError()) == "KeyError"
    assert type_name(json.JSONDecodeError) == "json.decoder.JSONDecodeError"
    assert message(Broken()) == "<Broken: unprintable message>"
    assert len(message(ValueError("x" * 5000))) == 1000


def test_a_message_is_read_once_and_is_a_plain_str() -> None:
    class Text(str):
        def strip(self, chars: str | None = None) -> str:
            raise RuntimeError("strip is broken")

        def __len__(self) -> int:
            raise RuntimeError("len is broken")

    reads: list[int] = []

    class Odd(Exception):
        def __str__(self) -> str:
            reads.append(1)
            return Text("odd text")

    text = message(Odd())
    assert type(text) is str
    assert text.strip() == "odd text"
    assert reads == [1]


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="depth"):
        Fingerprinter(depth=0)
    with pytest.raises(ValueError, match="max_chain"):
        Fingerprinter(max_chain=0)


# -- caches: a storm repeats the same code objects; results must not change ---------------


def test_a_repeated_error_reuses_its_fingerprint() -> None:
    views = load(VIEWS, "/srv/app/myapp/views.py", "myapp.views")
    fingerprinter = Fingerprinter()
    first = fingerprinter.fingerprint(raised(views["checkout"]))
    again = fingerprinter.fingerprint(raised(views["checkout"]))
    assert again is first
    # What a fresh fingerprinter computes, with nothing cached, is the same.
    assert Fingerprinter().fingerprint(raised(views["checkout"])) == first


def test_one_code_object_run_as_two_modules_has_two_fingerprints() -> None:
    code = compile(VIEWS, "/srv/app/shared/views.py", "exec")
    shop: dict[str, Any] = {"__name__": "shop.views"}
    blog: dict[str, Any] = {"__name__": "blog.views"}
    exec(code, shop)
    exec(code, blog)
    fingerprinter = Fingerprinter()
    in_shop = fingerprinter.fingerprint(raised(shop["checkout"]))
    in_blog = fingerprinter.fingerprint(raised(blog["checkout"]))
    assert in_shop.readable == "ZeroDivisionError at shop.views:checkout > shop.views:charge"
    assert in_blog.readable == "ZeroDivisionError at blog.views:checkout > blog.views:charge"
    assert fingerprinter.fingerprint(raised(shop["checkout"])) == in_shop


def test_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint_module, "_CACHE_LIMIT", 8)
    fingerprinter = Fingerprinter()
    views = [
        load("def view():\n    raise KeyError(1)\n", f"/srv/m{i}.py", f"app.m{i}")
        for i in range(30)
    ]
    errors = [raised(module["view"]) for module in views]
    digests = [fingerprinter.fingerprint(exc).digest for exc in errors]
    assert len(set(digests)) == 30
    assert len(fingerprinter._code_cache) <= 8
    assert len(fingerprinter._fingerprint_cache) <= 8
    # Emptied and refilled, the caches still give the same answers.
    assert [fingerprinter.fingerprint(exc).digest for exc in errors] == digests
    assert [Fingerprinter().fingerprint(exc).digest for exc in errors] == digests


def test_frames_and_key_frames_agree_with_the_fingerprint() -> None:
    lib = load("def load(fn):\n    return fn()\n", LIBRARY_FILE, "somelib.core")
    views = load(VIEWS, "/srv/app/myapp/views.py", "myapp.views")
    exc = raised(lambda: lib["load"](views["checkout"]))
    for depth in (1, 2, 5):
        fingerprinter = Fingerprinter(depth=depth)
        idents = " > ".join(frame.ident for frame in fingerprinter.key_frames(exc))
        assert fingerprinter.fingerprint(exc).readable == f"ZeroDivisionError at {idents}"
        # Twice: the second answer comes from the caches.
        assert fingerprinter.fingerprint(exc).readable == f"ZeroDivisionError at {idents}"
    frames = Fingerprinter().frames(exc)
    assert [(f.module, f.in_app) for f in frames][-4:] == [
        ("tests.test_fingerprint", True),
        ("somelib.core", False),
        ("myapp.views", True),
        ("myapp.views", True),
    ]
    assert frames[-1].filename == "views.py"
    assert frames[-1].lineno == 6
