"""The spool file and its WAL files are private to their owner, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pd_integrations.delivery.spool import Spool

KEY = "spoolpermissionsroutingkey000001"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o277])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A permissive, the usual and an odd umask (one that would leave the owner unable
    to write); os.umask is per process, and this test's threads create no other files."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_a_new_spool_and_its_wal_files_are_private(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "pagerduty.db"
    spool = Spool(path, routing_key=KEY)
    try:  # opening writes (the schema), so the WAL files exist while it is open
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(file.exists() for file in files)
        assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
    finally:
        spool.close()
    reopened = Spool(path, routing_key=KEY)  # usable by its owner, whatever the umask
    assert reopened.pending_count() == 0
    reopened.close()


def test_an_existing_spool_keeps_its_group_but_not_every_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared.db"
    Spool(shared, routing_key=KEY).close()
    shared.chmod(0o660)  # several users of one group share it on purpose
    Spool(shared, routing_key=KEY).close()
    assert mode(shared) == 0o660

    # As an older version left it under umask 022, or as a careless `touch` made it.
    public = tmp_path / "public.db"
    Spool(public, routing_key=KEY).close()
    for file in (public, Path(f"{public}-wal"), Path(f"{public}-shm")):
        file.touch()
        file.chmod(0o666)
    with caplog.at_level(logging.INFO, "pd_integrations.spool"):
        spool = Spool(public, routing_key=KEY)
    try:
        modes = {mode(file) for file in (public, Path(f"{public}-wal"), Path(f"{public}-shm"))}
        assert modes == {0o660}
        assert "open to every user" in caplog.text
    finally:
        spool.close()
