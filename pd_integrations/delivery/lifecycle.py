"""The process's life as delivery sees it: forks, exit and SIGTERM, in one place.

**Fork.** A forked child inherits locks that another thread of the parent may have held
at the fork, and the parent's queues, which the parent still delivers. Modules say what
a child must redo with :func:`after_fork_in_child` (a function) or
:func:`replace_locks_after_fork` (an object with ``_after_fork()``, held weakly); the
one ``os.register_at_fork`` hook below runs them in registration order.

**Exit.** :func:`register` names the flush of queued events and its time budget; the
one ``atexit`` hook below runs it at a normal interpreter exit.

**SIGTERM.** It does not run exit handlers when its disposition is the default one (the
kernel ends the process at once): plain ``python app.py``, ``manage.py runserver
--noreload``, a gunicorn ``UvicornWorker`` (it resets SIGTERM to the default) or a
uvicorn app started with ``uvicorn.run(app)`` (it restores the previous handler and
raises the signal again after its graceful shutdown). :func:`install` covers those
cases, and only those: it installs a handler only when SIGTERM still has its default
disposition, only from the main thread, and the handler flushes for a bounded time,
then puts the default back and raises SIGTERM again, so the process ends exactly as it
would have. A server that handles SIGTERM itself and exits normally (gunicorn's sync and
thread workers, uvicorn's own CLI, Django's autoreloader) keeps its handler; ``atexit``
or the framework adapter's shutdown hook flushes there.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Final, Protocol

__all__ = [
    "ForkAware",
    "after_fork_in_child",
    "install",
    "installed",
    "register",
    "replace_locks_after_fork",
]

_log = logging.getLogger("pd_integrations.shutdown")

# Time allowed beyond the flush budget for the flushing thread to wind up.
JOIN_MARGIN: Final = 1.0

_flush: Callable[[], None] | None = None
_budget: Callable[[], float] = lambda: 0.0  # noqa: E731 - replaced by register()
_lock = threading.Lock()


def register(flush: Callable[[], None], budget: Callable[[], float]) -> None:
    """Set what the handler runs: ``flush()`` must finish within ``budget()`` seconds.

    :mod:`pd_integrations.delivery.dispatcher` registers its exit flush here when it is
    imported; the ``atexit`` hook and the SIGTERM handler both run it.
    """
    global _flush, _budget
    _flush, _budget = flush, budget


def installed() -> bool:
    """Whether this module's handler is SIGTERM's current handler."""
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


def install() -> bool:
    """Flush queued PagerDuty events on SIGTERM where nothing else would.

    Returns ``True`` when the handler is (now) in place. Does nothing, and returns
    ``False``, outside the main thread, where SIGTERM is ignored, or where another
    handler is installed (that server decides how the process stops). Safe to call
    any number of times, e.g. from an app factory or ``AppConfig.ready()``.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current is _on_sigterm:
                return True
            if current is not signal.SIG_DFL:
                return False
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # an embedded interpreter may refuse signals
            _log.debug("could not install a SIGTERM handler", exc_info=True)
            return False
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # The signal interrupted the main thread anywhere, possibly while it held one of
    # the dispatcher's locks: flush from another thread and wait for it only so long.
    flush = _flush
    if flush is not None:
        worker = threading.Thread(target=_run_flush, args=(flush,), name="pd_integrations-sigterm")
        worker.start()
        worker.join(_budget() + JOIN_MARGIN)
        if worker.is_alive():
            _log.warning("SIGTERM: the PagerDuty flush did not finish in time; exiting anyway")
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        # Called by another handler that chained to us: it decides what happens next.
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signum)


def _run_flush(flush: Callable[[], None]) -> None:
    try:
        flush()
    except Exception:
        _log.exception("flushing PagerDuty events on SIGTERM failed")


def _flush_at_exit() -> None:
    flush = _flush
    if flush is not None:
        flush()


class ForkAware(Protocol):
    """Something holding locks or connections that a forked child must replace."""

    def _after_fork(self) -> None: ...


_fork_hooks: list[Callable[[], None]] = []
_fork_aware: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def after_fork_in_child(hook: Callable[[], None]) -> None:
    """Run ``hook()`` in every child forked from now on, after the hooks added before it."""
    _fork_hooks.append(hook)


def replace_locks_after_fork(obj: ForkAware) -> None:
    """Call ``obj._after_fork()`` in every forked child while ``obj`` is alive."""
    _fork_aware.add(obj)


def _in_forked_child() -> None:
    global _lock
    _lock = threading.Lock()
    for hook in list(_fork_hooks):
        hook()
    for obj in list(_fork_aware):
        obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_forked_child)
atexit.register(_flush_at_exit)
