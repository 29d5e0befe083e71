#!/usr/bin/env python3
"""Set up and run the project with nothing but python3 (3.11+).

    python3 dev.py demo    # the demo: an app alerting into the bundled local emulator
    python3 dev.py test    # every check CI runs: lint, types, docs, the whole test suite
                           # (and the Django example projects' own), then the adapters'
                           # tests on each supported framework version

Both create (or reuse) the virtual environment in .venv and install what they need;
`test` also installs the system packages the tests use (Chromium) with apt-get when
they are missing. Only the standard library is used here, on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"
# Debian packages the test suite drives for real: the console's browser test and the
# shared-state tests, which need a real Redis server.
SYSTEM_PACKAGES = {"chromium": "/usr/bin/chromium", "redis-server": "/usr/bin/redis-server"}
# The tests find the server started for them here (tests/redis_server.py).
REDIS_URL_VARIABLE = "PD_TEST_REDIS_URL"
# Django projects tested by pytest runs of their own (see `test`).
DJANGO_EXAMPLES = ("example_projects/django_project", "example_projects/django_pytest")


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env=env)  # noqa: S603


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may run on any python3
        sys.exit(f"pd_integrations needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        run(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    # Reinstall only when the project's dependencies changed since the last install.
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed-{extras.replace(',', '-')}"
    if not stamp.exists() or stamp.read_text() != digest:
        run(PYTHON, "-m", "pip", "install", "-q", "-e", f".[{extras}]")
        stamp.write_text(digest)


def ensure_system_packages() -> None:
    missing = [pkg for pkg, path in SYSTEM_PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"warning: cannot install {', '.join(missing)}: browser tests will be skipped")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-q", env=env)
    run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[dict[str, str]]:
    """A throwaway Redis on a loopback port for the test run; yields the env to pass on."""
    binary = SYSTEM_PACKAGES["redis-server"]
    if not Path(binary).exists():
        yield {}
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pd-redis-") as workdir:
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        args += [
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--loglevel",
            "warning",
            "--logfile",
            "redis.log",
        ]
        server = subprocess.Popen(args, cwd=workdir)  # noqa: S603
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            print(f"+ redis-server on 127.0.0.1:{port}", flush=True)
            yield {REDIS_URL_VARIABLE: f"redis://127.0.0.1:{port}/0"}
        finally:
            server.terminate()
            server.wait(timeout=10)


def test(pytest_args: list[str]) -> None:
    ensure_venv("dev")
    ensure_system_packages()
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "mypy")
    docs_env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run(BIN / "mkdocs", "build", "--strict", "--site-dir", VENV / "site", env=docs_env)
    with redis_server() as redis_env:
        # pytest-django takes its settings module from the configuration (pyproject.toml
        # here, each Django example's own below), not from a developer's environment.
        test_env = {**os.environ, **redis_env}
        test_env.pop("DJANGO_SETTINGS_MODULE", None)
        run(PYTHON, "-m", "pytest", "-n", "2", "-q", *pytest_args, env=test_env)
        # Each Django example is a pytest-django project with its own settings module,
        # so each is a run of its own (Django is configured once per process).
        for project in () if pytest_args else DJANGO_EXAMPLES:
            run(PYTHON, "-m", "pytest", "-q", project, env=test_env)
    if not pytest_args:
        # The adapters against the oldest and newest supported release of each framework
        # (tox.ini); skipped when the command was given pytest arguments, e.g. one file.
        run(BIN / "tox", "run-parallel", "-m", "frameworks", "-p", "2", "--parallel-no-spinner")


def demo(args: list[str]) -> None:
    ensure_venv("demo")
    run(BIN / "pd-integrations", "demo", *args)


def main() -> None:
    commands = {"test": test, "demo": demo}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)


if __name__ == "__main__":
    main()
