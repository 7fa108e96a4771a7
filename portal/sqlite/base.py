"""Django's SQLite backend, but in a background process (portal.write_gate.background_process) a transaction takes
a turn before its BEGIN IMMEDIATE and gives it back at its COMMIT or ROLLBACK, and a write statement outside one takes
a turn for itself: SQLite's write lock goes to each waiting writer in turn instead of to whoever polls first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.sqlite3 import base

from portal.write_gate import WriteTurn, turns_taken

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class DatabaseWrapper(base.DatabaseWrapper):
    _turn: WriteTurn | None = None

    def write_turn(self) -> WriteTurn | None:
        """This connection's turn, in a background process on a database file; None elsewhere."""
        if self._turn is None and turns_taken() and not self.is_in_memory_db():
            self._turn = WriteTurn(str(self.settings_dict["NAME"]))
        return self._turn

    def create_cursor(self, name: str | None = None) -> Any:
        cursor = self.connection.cursor(factory=TurnCursor)
        cursor.turn = self.write_turn()
        return cursor

    def _start_transaction_under_autocommit(self) -> None:
        turn = self.write_turn()
        if turn is None:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # not in django-stubs
            return
        turn.take()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # not in django-stubs
        except BaseException:
            turn.give()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]  # not in django-stubs
        finally:
            self._give_turn()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]  # not in django-stubs
        finally:
            self._give_turn()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]  # not in django-stubs
        finally:
            if self._turn is not None:
                self._turn.close()

    def _give_turn(self) -> None:
        if self._turn is not None and not (self.connection and self.connection.in_transaction):
            self._turn.give()


class TurnCursor(base.SQLiteCursorWrapper):
    """A write statement outside a transaction takes a turn for itself (the task queue's, say)."""

    turn: WriteTurn | None = None

    def execute(self, query: str, params: Any = None) -> Any:
        with self._turn_for(query):
            return super().execute(query, params)

    def executemany(self, query: str, param_list: Any) -> Any:
        with self._turn_for(query):
            return super().executemany(query, param_list)

    @contextmanager
    def _turn_for(self, query: str) -> Iterator[None]:
        turn = self.turn
        if turn is None or turn.held or self.connection.in_transaction:
            yield
            return
        if not query.lstrip()[:7].upper().startswith(WRITES):
            yield
            return
        turn.take()
        try:
            yield
        finally:
            turn.give()
