"""On SQLite, a write Intercom is waiting on goes before background work.

SQLite has one write lock, and a writer that finds it taken polls for it (its busy handler sleeps up to 100 ms
between tries). A drain working through a backlog commits a batch and begins the next within microseconds, so a
webhook request polling for the lock almost never finds it free: it waited until the whole backlog was done, or
until its busy timeout, and was answered 503. The gate is a lock file beside the database: a foreground write (the
webhook's INSERT) holds it shared while it writes, and background writers take it exclusively for a moment before
each transaction, so none begins while a webhook is waiting. A webhook then waits for at most the one batch under
way (INTAKE_BATCH_TRANSACTION_SECONDS). The operating system releases the lock of a process that dies.

Background writers take turns (`WriteTurn`): in the cluster's processes every write to the database, a transaction
from its BEGIN to its COMMIT or ROLLBACK or a write statement of its own, first takes a turn, a lock file each
process waits on in the kernel and is woken from as it is given back, so SQLite's busy handler never has to win the
lock by polling. With polling, the drain's batches took it back within microseconds of each commit while the senders
slept up to 100 ms between tries: during a 10,000-closure burst one of another account's sends waited 2.5-4.4 s for
the lock to record Stella's answer and 3.4 s to claim its request (timestamps in the database, bench/fairness.py;
py-spy showed the cluster's workers a third of their time in BEGIN IMMEDIATE). A turnstile of two lock files keeps
the one who gave the lock back from taking it again ahead of one who waits: whoever waits for the lock holds the
turnstile, so the next writer waits behind them.

PostgreSQL locks rows, not the database: there the gate is open and nobody takes turns.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
    except OSError:  # no place beside the database (it can't be opened either): the write itself will say so
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


_taking_turns = False


def background_process() -> None:
    """Call once in a process that does background work (`runcluster`, before it forks its workers): its SQLite
    connections wait longer for the write lock than a web request's, since nobody is waiting on the answer, and
    write in turns (WriteTurn)."""
    global _taking_turns  # noqa: PLW0603
    _taking_turns = True
    connection_created.connect(_wait_longer, dispatch_uid="portal.write_gate.background")
    if connection.connection is not None:  # opened before this was called
        _wait_longer(None, connection)


def _wait_longer(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {BACKGROUND_BUSY_TIMEOUT_MS}")


def turns_taken() -> bool:
    """Whether this process's writes to SQLite take turns (a background process's do)."""
    return _taking_turns


@dataclass
class WriteTurn:
    """One connection's turn to write to the SQLite database at `database` (its file name), among the background
    processes' connections: `take()` waits for it (in the turnstile, then for the lock), `give()` hands it on.
    Each connection opens the two lock files itself, again in a forked child: a lock belongs to its open file."""

    database: str
    held: bool = False
    _files: tuple[int, int] | None = field(default=None, repr=False)
    _pid: int = 0

    def take(self) -> None:
        if self.held:
            return
        turnstile, lock = self._opened()
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # behind whoever waits for the lock already
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        self.held = True

    def give(self) -> None:
        if self.held and self._pid == os.getpid() and self._files:
            fcntl.flock(self._files[1], fcntl.LOCK_UN)
        self.held = False

    def _opened(self) -> tuple[int, int]:
        if self._files is None or self._pid != os.getpid():  # a child's copies would share its parent's locks
            self._files = tuple(  # type: ignore[assignment]
                os.open(f"{self.database}.{name}", os.O_RDWR | os.O_CREAT, 0o600) for name in ("turnstile", "turn")
            )
            self._pid = os.getpid()
            self.held = False
        assert self._files is not None
        return self._files

    def close(self) -> None:
        self.give()
        if self._files and self._pid == os.getpid():
            for descriptor in self._files:
                os.close(descriptor)
        self._files = None
