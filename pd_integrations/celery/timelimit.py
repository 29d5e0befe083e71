"""Hard time limits on Celery before 5.7, which sends no signal for them.

When a task runs past its hard ``time_limit``, the prefork pool kills the child and the
main worker process records the failure, but Celery 5.3 to 5.6 send no ``task_failure``
for it (5.7 does, and then this module stays out of the way). What the main process
always does is log ``Hard time limit (%ss) exceeded for %s[%s]`` at ERROR on the
``celery.worker.request`` logger, with the limit, task name and task id as the record's
arguments. A handler on that logger, reading those arguments (never parsing text), is
how the alert is raised there, through Python's public logging API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import celery

__all__ = ["HARD_LIMIT_MESSAGE", "LOGGER", "install", "needed", "uninstall"]

LOGGER: Final = "celery.worker.request"
HARD_LIMIT_MESSAGE: Final = "Hard time limit (%ss) exceeded for %s[%s]"
FIRST_VERSION_WITH_SIGNAL: Final = (5, 7)

OnLimit = Callable[[str, str, float], None]
"""``(task name, task id, limit in seconds) -> None``."""


def needed(version: tuple[int, ...] | None = None) -> bool:
    """Does this Celery leave hard time limits without a ``task_failure`` signal?"""
    found = tuple(celery.VERSION[:2]) if version is None else version
    return found < FIRST_VERSION_WITH_SIGNAL


class _Handler(logging.Handler):
    def __init__(self, on_limit: OnLimit) -> None:
        super().__init__(logging.ERROR)
        self.on_limit = on_limit

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if record.msg != HARD_LIMIT_MESSAGE or not isinstance(args, tuple) or len(args) != 3:
            return
        limit, name, task_id = args
        try:
            self.on_limit(str(name), str(task_id), float(limit))  # type: ignore[arg-type]
        except Exception:  # a logging handler never raises into the worker
            logging.getLogger("pd_integrations.celery").exception(
                "could not alert on a hard time limit"
            )


def install(on_limit: OnLimit) -> None:
    logging.getLogger(LOGGER).addHandler(_Handler(on_limit))


def uninstall(on_limit: OnLimit) -> None:
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _Handler) and handler.on_limit == on_limit:
            logger.removeHandler(handler)
