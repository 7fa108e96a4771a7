"""Handing work to the django-q2 cluster."""

import functools

from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task


@functools.cache
def _broker() -> Broker:
    # django-q2 builds a new broker for every task unless given one; once per process is enough.
    return get_broker()


def enqueue(func: str, *args: object, name: str | None = None) -> None:
    """Queue `func` (a dotted path: schedules and queued tasks name it, so renames need care)."""
    async_task(func, *args, broker=_broker(), task_name=name)
