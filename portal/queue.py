"""Handing work to the django-q2 cluster."""

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

# Tasks held back by enqueues_batched, queued together as its block ends.
_held: ContextVar[list[tuple[str, tuple[object, ...], str | None]] | None] = ContextVar("held_tasks", default=None)


@functools.cache
def _broker() -> Broker:
    # django-q2 builds a new broker for every task unless given one; once per process is enough.
    return get_broker()


def enqueue(func: str, *args: object, name: str | None = None) -> None:
    """Queue `func` (a dotted path: schedules and queued tasks name it, so renames need care)."""
    if (held := _held.get()) is not None:
        held.append((func, args, name))
        return
    async_task(func, *args, broker=_broker(), task_name=name)


@contextmanager
def enqueues_batched() -> Iterator[None]:
    """Queue what the block enqueues together as it ends, in one transaction: with the database broker, one
    commit for a batch's tasks instead of one each."""
    held: list[tuple[str, tuple[object, ...], str | None]] = []
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
        if held:
            with transaction.atomic():
                for func, args, name in held:
                    async_task(func, *args, broker=_broker(), task_name=name)
