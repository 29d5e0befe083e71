"""Is this process one of several workers of a server, each with its own alert state?

Without shared state (``PAGERDUTY_STATE_URL``), every worker keeps its own open alerts,
occurrence counts and health-check history: one outage pages once per worker, and a
health alert is resolved by whichever worker a probe reaches. :func:`worker_server`
recognises the usual multi-process servers so that the adapters can say so, once, at
start-up, and ``check`` can show it. Recognition is best effort and never raises.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["MULTI_PROCESS_FIX", "multi_process_warning", "worker_server"]

MULTI_PROCESS_FIX: Final = (
    "set PAGERDUTY_STATE_URL to a Redis URL (redis://host:6379/0) shared by every worker"
)


def _workers_flag(args: Sequence[str], names: tuple[str, ...]) -> int | None:
    for index, arg in enumerate(args):
        for name in names:
            value: str | None = None
            if arg == name and index + 1 < len(args):
                value = args[index + 1]
            elif arg.startswith(name + "="):
                value = arg.partition("=")[2]
            elif name.startswith("-") and not name.startswith("--") and arg.startswith(name):
                value = arg[len(name) :] or None
            if value is not None:
                try:
                    return int(value)
                except ValueError:
                    return None
    return None


def _concurrency(environ: Mapping[str, str]) -> int | None:
    try:
        return int(environ.get("WEB_CONCURRENCY", ""))
    except ValueError:
        return None


def worker_server(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    modules: Mapping[str, object] | None = None,
) -> tuple[str, int] | None:
    """``(server, workers)`` when this process is one of several workers, else ``None``.

    gunicorn and uvicorn: the worker count from the command line (``-w``/``--workers``),
    ``GUNICORN_CMD_ARGS`` or ``WEB_CONCURRENCY``; uWSGI: its ``numproc``; Celery: a
    prefork pool worker.
    """
    args = list(sys.argv if argv is None else argv)
    env = os.environ if environ is None else environ
    loaded = sys.modules if modules is None else modules
    command = os.path.basename(args[0]) if args else ""
    if "gunicorn" in command or "gunicorn.arbiter" in loaded:
        extra = shlex.split(env.get("GUNICORN_CMD_ARGS", ""))
        workers = _workers_flag([*args[1:], *extra], ("--workers", "-w")) or _concurrency(env)
        return ("gunicorn", workers) if workers is not None and workers > 1 else None
    uwsgi = loaded.get("uwsgi")
    if uwsgi is not None:
        workers = getattr(uwsgi, "numproc", 1)
        return ("uWSGI", int(workers)) if isinstance(workers, int) and workers > 1 else None
    if "uvicorn" in command or "uvicorn" in loaded:
        workers = _workers_flag(args[1:], ("--workers",)) or _concurrency(env)
        if workers is None:
            # uvicorn's workers are spawned children: the parent's flags are not theirs.
            import multiprocessing

            if multiprocessing.parent_process() is not None and "uvicorn.supervisors" in loaded:
                return ("uvicorn", 2)
        return ("uvicorn", workers) if workers is not None and workers > 1 else None
    if "celery" in command and "worker" in args:
        other_pools = ("solo", "threads", "gevent", "eventlet")
        if not any(arg.rpartition("=")[2] in other_pools for arg in args):
            workers = _workers_flag(args, ("--concurrency", "-c")) or os.cpu_count() or 1
            return ("Celery prefork", workers) if workers > 1 else None
    return None


def multi_process_warning(
    shared_state: bool,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    modules: Mapping[str, object] | None = None,
) -> str | None:
    """The warning to log (once) when workers would each keep their own alert state."""
    if shared_state:
        return None
    found = worker_server(argv, environ, modules)
    if found is None:
        return None
    server, workers = found
    return (
        f"PagerDuty: {server} runs {workers} worker processes and alert state is kept per "
        "process: one outage pages once per worker, and a health alert is resolved by "
        f"whichever worker a probe reaches; {MULTI_PROCESS_FIX}"
    )
