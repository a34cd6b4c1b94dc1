"""Waiting out a database restart: the worker's writes survive one instead of failing
the documents they concern."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")


def database_lost(exc: BaseException) -> bool:
    """True when `exc` means the connection to the database is gone, rather than that one
    statement failed (a deadlock, a timeout)."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    # The driver marks its connection closed when the server went away (or a reconnect
    # failed and left none); a statement that merely failed leaves it open.
    raw = connection.connection
    return raw is None or bool(raw.closed)


def until_database_returns(action: Callable[[], T], *, deadline: float) -> T:
    """Run `action`, again while the database is unreachable, until `deadline`
    (`time.monotonic()`). Only for actions that are safe to repeat."""
    pause = 0.5
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError) as exc:
            if (
                connection.in_atomic_block  # the caller's transaction is lost: its call
                or not database_lost(exc)
                or time.monotonic() + pause > deadline
            ):
                raise
            logger.warning("database unavailable, trying again in %.1f s: %s", pause, exc)
            connection.close()  # a broken connection stays broken; the next query reconnects
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
