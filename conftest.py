"""Every Python snippet in ``docs/`` and ``README.md`` runs, with Sybil, as part of pytest.

The snippets of one page share a namespace and run in order, against a local emulator
started for the page: the environment points the Events API and the REST API at it
(``PAGERDUTY_EVENTS_BASE_URL``, ``PAGERDUTY_REST_BASE_URL``) and sets a routing key, an
API key and a webhook secret, as a reader following the page would.

A snippet that uses names the reader supplies (their database, their app) gets them
from an ``<!-- invisible-code-block: python -->`` before it; one that needs a project
around it (Django settings, a running webhook endpoint) is marked
``<!-- skip: next "why" -->``, so the fragment and what it assumes are explicit.

Each page is one test (``docs/flask.md::snippets``), so pytest-xdist never splits a
page's snippets between workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import SkipTest

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from pd_integrations.alerts import live_managers
from pd_integrations.emulator import Emulator

DOCS_ROUTING_KEY = "0123456789abcdef0123456789abcdef"
DOCS_API_KEY = "docs-api-key-0000"
DOCS_WEBHOOK_SECRET = "docs-webhook-secret"  # noqa: S105 - a test value

_ENV_KEYS = "__docs_env__", "__docs_emulator__", "__docs_managers__"


def _setup(namespace: dict[str, Any]) -> None:
    emulator = Emulator(port=0)
    emulator.start()
    env = {
        "PAGERDUTY_EVENTS_BASE_URL": emulator.url,
        "PAGERDUTY_REST_BASE_URL": emulator.rest_url,
        "PAGERDUTY_ROUTING_KEY": DOCS_ROUTING_KEY,
        "PAGERDUTY_API_KEY": DOCS_API_KEY,
        "PAGERDUTY_WEBHOOK_SECRET": DOCS_WEBHOOK_SECRET,
    }
    # As in a module of the reader's (Flask finds an app's root path from it).
    namespace["__name__"] = "docs_snippet"
    namespace["__docs_env__"] = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    namespace["__docs_emulator__"] = emulator
    namespace["__docs_managers__"] = set(map(id, live_managers()))


def _teardown(namespace: dict[str, Any]) -> None:
    before = namespace["__docs_managers__"]
    for manager in live_managers():
        if id(manager) not in before:
            manager.close(timeout=2.0)
    namespace["__docs_emulator__"].stop()
    for name, value in namespace["__docs_env__"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()])
_PAGES = ("docs/*.md", "README.md")


class DocsPage(pytest.Item):
    """One page: its snippets run in order in one namespace (so also under xdist)."""

    def runtest(self) -> None:
        document = _SYBIL.parse(self.path)
        _setup(document.namespace)
        try:
            for example in document.examples():
                try:
                    example.evaluate()
                except SkipTest:
                    continue  # a fragment marked "skip: next"
        finally:
            _teardown(document.namespace)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"the Python snippets of {self.name}"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    relative = file_path.relative_to(parent.config.rootpath)
    if not any(relative.match(pattern) for pattern in _PAGES) or len(relative.parts) > 2:
        return None
    page: _PageFile = _PageFile.from_parent(parent, path=file_path)
    return page


class _PageFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        return [DocsPage.from_parent(self, name="snippets")]
