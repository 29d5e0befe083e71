"""The built wheel, installed in a fresh virtual environment, runs the demo.

A source checkout has ``example_projects/``; a wheel has only the package. This builds
the wheel, installs it (without dependencies) into a new venv, and runs
``pd-integrations demo --json`` from an empty directory. The venv borrows the test
environment's site-packages for FastAPI, uvicorn and httpx through ``PYTHONPATH``,
which holds no ``pd_integrations`` of its own (the editable install is a ``.pth``
file, read only for site directories), so the wheel's copy is the one that runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("pd_integrations-*.whl")
    return built


def test_the_wheel_carries_the_demo_app_and_the_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pd_integrations/emulator/demo_bookshop.py" in names
    assert "pd_integrations/py.typed" in names
    assert not any(name.startswith(("tests/", "example_projects/")) for name in names)


@pytest.mark.timeout(600)
def test_the_installed_wheel_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAGERDUTY_", "PYTHON"))
    }
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    ran = subprocess.run(
        [str(env_dir / "bin" / "pd-integrations"), "demo", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["alerts"]
    located = subprocess.run(
        [str(python), "-c", "import pd_integrations; print(pd_integrations.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in located.stdout
