"""Building and sending Intercom webhooks in tests, walking every admin page, and waiting for what another thread
or process does."""

import copy
import json
import time
from collections.abc import Callable
from multiprocessing import Queue, Value
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, reverse
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.monitor import monitor
from django_q.signing import SignedPackage
from django_q.worker import worker
from prometheus_client.parser import text_string_to_metric_families

from integrations.intercom.signature import signature_for
from surveys.tasks import process_inbound_webhooks

FIXTURES = Path(__file__).parent / "fixtures" / "intercom"
# Real captured Intercom webhooks, copied with their sources (captured/SOURCES.md) so a clean clone tests them.
CAPTURED_FIXTURES = FIXTURES / "captured"
WORKSPACE_ID = "ws1test"
T = TypeVar("T")


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: bytes, secret: str | None = None) -> str:
    return signature_for(body, secret or settings.INTERCOM_CLIENT_SECRET)


def notification(name: str, **envelope: Any) -> dict[str, Any]:
    """A fixture with envelope fields replaced, e.g. id=… or created_at=…."""
    payload = copy.deepcopy(load_fixture(name))
    payload.update(envelope)
    return payload


def post_webhook(
    client: Client,
    payload: dict[str, Any] | bytes,
    *,
    signature: str | None = None,
    process: bool = True,
    **headers: Any,
):
    """POST a signed webhook, then (unless process=False) run the task that acts on stored webhooks."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = client.post(
        "/webhooks/intercom/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature": signature if signature is not None else sign(body), **headers},
    )
    if process:
        process_inbound_webhooks()
    return response


def queued_tasks() -> list[dict[str, Any]]:
    """The tasks waiting on the broker (the database's queue table, or Redis's list), oldest first, left there."""
    broker = get_broker()
    if isinstance(broker, Redis):
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        payloads = OrmQ.objects.filter(key=broker.list_key).order_by("pk").values_list("payload", flat=True)
    return [SignedPackage.loads(payload) for payload in payloads]


def queued_tasks_purge() -> None:
    """Drop every task waiting on the broker, as a lost queue message would be."""
    get_broker().purge_queue()


def _queued_task_pop() -> dict[str, Any]:
    broker = get_broker()
    if isinstance(broker, Redis):
        payload = broker.connection.lpop(broker.list_key)
    else:
        row = OrmQ.objects.filter(key=broker.list_key).earliest("pk")
        row.delete()
        payload = row.payload
    return SignedPackage.loads(payload)


def run_queued_tasks(*, rounds: int = 10) -> list[str]:
    """Do what the cluster would: run every task waiting on the broker, and those they queue."""
    ran = []
    for _ in range(rounds):
        waiting = len(queued_tasks())
        if not waiting:
            break
        for _ in range(waiting):
            task = _queued_task_pop()
            import_string(task["func"])(*task["args"], **task["kwargs"])
            ran.append(task["func"])
    return ran


def run_queued_tasks_through_django_q() -> int:
    """Run every task waiting on the broker through django-q2's own worker and monitor, in this process, as a
    cluster would: a task that raises is caught and saved as a failure by django-q2 itself. Returns how many ran.
    (Conf.SYNC keeps the test's database connection open: the worker closes old connections otherwise.)"""
    tasks: Queue = Queue()
    results: Queue = Queue()
    ran = len(queued_tasks())
    for _ in range(ran):
        tasks.put(_queued_task_pop())
    tasks.put("STOP")
    sync_before, Conf.SYNC = Conf.SYNC, True
    try:
        worker(tasks, results, Value("f", -1))
        results.put("STOP")
        monitor(results, get_broker())
    finally:
        Conf.SYNC = sync_before
        for queue in (tasks, results):
            queue.close()
            queue.join_thread()
    return ran


def admin_urls(objects: dict[type[Model], Model]) -> list[str]:
    """Every admin URL: each model admin's own and custom views, on the given objects where one is wanted."""
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        target = objects.get(model) or model._default_manager.first()
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            arguments = list(pattern.pattern.converters)
            try:
                urls.append(reverse(f"admin:{pattern.name}", args=[target.pk] * len(arguments) if target else []))
            except NoReverseMatch:
                continue
    return urls


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in a /metrics answer whose labels include `labels` (0 if there is none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def wait_until(
    condition: Callable[[], T], *, timeout: float, message: str | Callable[[], object], interval: float = 0.05
) -> T:
    """Ask `condition()` every `interval` seconds until it returns something true, and return that; after `timeout`
    seconds fail the test with `message` (called then, if callable, to say what state things were left in).

    For what can only be seen by asking (another process's rows, a process's priority). Where a thread of the test
    can signal what it did, wait on a threading.Event, or join it, instead."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(str(message() if callable(message) else message))
        time.sleep(interval)
    return result
