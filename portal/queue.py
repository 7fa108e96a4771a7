"""Handing work to the django-q2 cluster."""

import functools

from django.db import transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task


@functools.cache
def _broker() -> Broker:
    # django-q2 builds a new broker for every task unless given one; once per process is enough.
    return get_broker()


def broker_ping() -> None:
    """Raise unless the task broker answers: Redis a PING; the database broker a read of its queue table."""
    broker = _broker()
    if isinstance(broker, ORM):
        broker.get_connection().exists()
    elif not broker.ping():
        raise ConnectionError(f"{broker.info()} did not answer PING")


def enqueue(func: str, *args: object, name: str | None = None) -> None:
    """Queue `func` (a dotted path: schedules and queued tasks name it, so renames need care)."""
    async_task(func, *args, broker=_broker(), task_name=name)


class TaskBatch:
    """Tasks a batch queues together, in one statement (see _Collected), when its owner calls `push()`: after its
    transaction commits. Passed down to what queues tasks."""

    def __init__(self) -> None:
        self.held: list[tuple[str, tuple[object, ...], str | None]] = []
        self.pushed = False

    def enqueue(self, func: str, *args: object, name: str | None = None) -> None:
        """Hold it for `push()`; once pushed (an on_commit callback run after it, in an outer transaction), queue it."""
        if self.pushed:
            enqueue(func, *args, name=name)
        else:
            self.held.append((func, args, name))

    def push(self) -> None:
        self.pushed = True
        held, self.held = self.held, []
        if held:
            collected = _Collected(_broker())
            for func, args, name in held:
                async_task(func, *args, broker=collected, task_name=name)
            collected.push()


class _Collected:
    """A broker that keeps what django-q2 packs for it, then pushes it all in one statement: one insert with
    the database broker, one RPUSH with Redis (each broker's own `enqueue` takes one task at a time)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.packs: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.broker, name)

    def enqueue(self, pack: str) -> None:
        self.packs.append(pack)

    def push(self) -> None:
        if isinstance(self.broker, ORM):
            now = timezone.now()
            key = self.broker.list_key or Conf.CLUSTER_NAME  # as ORM.enqueue has it
            self.broker.get_connection().bulk_create(OrmQ(key=key, payload=pack, lock=now) for pack in self.packs)
        elif isinstance(self.broker, Redis):
            self.broker.connection.rpush(self.broker.list_key, *self.packs)
        else:
            with transaction.atomic():
                for pack in self.packs:
                    self.broker.enqueue(pack)
