"""On SQLite, a write Intercom is waiting on goes before background work.

SQLite has one write lock, and a writer that finds it taken polls for it (its busy handler sleeps up to 100 ms
between tries). A drain working through a backlog commits a batch and begins the next within microseconds, so a
webhook request polling for the lock almost never finds it free: it waited until the whole backlog was done, or
until its busy timeout, and was answered 503. The gate is a lock file beside the database: a foreground write (the
webhook's INSERT) holds it shared while it writes, and background writers take it exclusively for a moment before
each transaction, so none begins while a webhook is waiting. A webhook then waits for at most the one batch under
way (INTAKE_BATCH_TRANSACTION_SECONDS). The operating system releases the lock of a process that dies.

PostgreSQL locks rows, not the database: there the gate is open.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def _gate_path() -> str | None:
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return f"{name}.write-gate"


@contextmanager
def _locked(mode: int) -> Iterator[None]:
    path = _gate_path()
    if path is None:
        yield
        return
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        # Beside a database that can't be opened either (its directory gone): no gate, and the database's own error
        # answers (a webhook gets 503, not 500).
        yield
        return
    try:
        fcntl.flock(descriptor, mode)
        yield
    finally:
        os.close(descriptor)  # and with it the lock


@contextmanager
def foreground_write() -> Iterator[None]:
    """Hold while writing what a caller waits on: background writers don't begin meanwhile."""
    with _locked(fcntl.LOCK_SH):
        yield


def background_write_turn() -> None:
    """Call before each background write transaction: returns once no foreground write is under way."""
    with _locked(fcntl.LOCK_EX):
        pass


# How long a connection waits for SQLite's write lock: a request briefly (settings.py, under Intercom's 5 s), so a
# webhook that can't be stored is answered 503 and delivered again rather than left hanging; background work longer.
BACKGROUND_BUSY_TIMEOUT_MS = 20_000


def background_process() -> None:
    """Call once in a process that does background work (`runcluster`, before it forks its workers): its SQLite
    connections wait longer for the write lock than a web request's, since nobody is waiting on the answer."""
    connection_created.connect(_wait_longer, dispatch_uid="portal.write_gate.background")
    if connection.connection is not None:  # opened before this was called
        _wait_longer(None, connection)


def _wait_longer(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {BACKGROUND_BUSY_TIMEOUT_MS}")
