"""On SQLite, a webhook is stored while the cluster drains a backlog, not after it: Intercom waits on the answer."""

import json
import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from integrations.webhooks import conversation_key
from portal import write_gate
from portal.write_gate import WriteTurn
from surveys.intake.process import inbound_webhooks_process_pending
from tests.helpers import WORKSPACE_ID, notification, sign, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BACKLOG = 1000


def closure(index: int) -> bytes:
    payload = notification("conversation_admin_closed", id=f"backlog-{index}", app_id=WORKSPACE_ID)
    payload["created_at"] = int(timezone.now().timestamp())
    payload["data"]["item"]["id"] = f"conversation-{index}"
    return json.dumps(payload).encode()


def stored(body: bytes) -> InboundWebhook:
    """As the webhook request stores it."""
    parsed = IntercomNotification.from_json(body)
    return InboundWebhook(
        body=body.decode(),
        notification_id=parsed.id,
        topic=parsed.topic,
        workspace_id=parsed.app_id,
        occurred_at=parsed.created_at,
        conversation_key=conversation_key(parsed),
    )


def drain_in_a_thread() -> threading.Thread:
    """The cluster's drain, with a connection of its own, as in the cluster's process."""

    def drain() -> None:
        try:
            inbound_webhooks_process_pending(seconds=600)
        finally:
            connection.close()

    drainer = threading.Thread(target=drain)
    drainer.start()
    return drainer


def test_a_webhook_is_stored_while_the_drain_works_through_a_backlog(account):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's one write lock: PostgreSQL locks rows")
    account.integration.channel_delay = timedelta(hours=1)  # nothing is sent meanwhile: only the drain writes
    account.integration.save()
    InboundWebhook.objects.bulk_create(stored(closure(index)) for index in range(BACKLOG))
    waiting = InboundWebhook.objects.filter(status=InboundWebhook.Status.RECEIVED)

    drainer = drain_in_a_thread()
    wait_until(
        lambda: waiting.count() <= BACKLOG * 0.9, timeout=60, message="the drain never got under way", interval=0.01
    )
    body = closure(BACKLOG)
    response = Client().post(
        "/webhooks/intercom/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE=sign(body)
    )
    left = waiting.exclude(notification_id=f"backlog-{BACKLOG}").count()
    drainer.join()

    assert response.status_code == 200
    # Stored while the drain still had work: the request didn't wait for the backlog to be done.
    assert left > 0
    assert not waiting.exists()  # and the drain took it too


def test_a_webhook_that_cant_be_stored_within_the_bound_is_answered_503_before_intercom_gives_up(account):
    """Something holds SQLite's write lock far longer than Intercom waits (5 s): the request stops waiting at
    SQLITE_BUSY_TIMEOUT and answers 503, so Intercom delivers it again, rather than hanging until the lock frees."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's one write lock: PostgreSQL locks rows")
    answered = threading.Event()
    holding = threading.Event()

    def hold_the_write_lock() -> None:
        holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holding.set()
        answered.wait(timeout=15)  # far past the bound; a request still waiting then gets the lock
        holder.execute("ROLLBACK")
        holder.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert holding.wait(timeout=30)
    body = closure(1)
    response = Client().post(
        "/webhooks/intercom/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE=sign(body)
    )
    gave_up_first = holder.is_alive()
    answered.set()
    holder.join()

    assert response.status_code == 503
    assert gave_up_first  # answered while the lock was still held, not after it was let go
    assert not InboundWebhook.objects.filter(notification_id="backlog-1").exists()


def test_a_writer_waiting_for_its_turn_goes_before_the_one_who_gave_it_back(tmp_path):
    """The drain commits a batch and wants the lock again at once: whoever waited meanwhile goes first."""
    database = str(tmp_path / "portal.sqlite3")
    drain, sender = WriteTurn(database), WriteTurn(database)  # each its own files, as two processes' connections
    order: list[str] = []
    drain.take()

    def send() -> None:
        sender.take()
        order.append("sender")
        time.sleep(0.2)
        sender.give()

    waiting = threading.Thread(target=send)
    waiting.start()
    time.sleep(0.2)  # the sender waits for the lock
    drain.give()
    drain.take()
    order.append("drain again")
    drain.give()
    waiting.join()
    drain.close()
    sender.close()

    assert order == ["sender", "drain again"]


def test_in_the_cluster_a_write_waits_for_its_turn_and_a_read_does_not(account, monkeypatch):
    """Every write of a background process, a transaction or a statement on its own, waits for its turn; a read
    never does (WAL: readers don't take the write lock)."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's one write lock: PostgreSQL locks rows")
    monkeypatch.setattr(write_gate, "_taking_turns", True)
    other = WriteTurn(str(connection.settings_dict["NAME"]))  # another process's connection, writing
    other.take()
    done: list[str] = []

    def work() -> None:
        try:
            done.append(f"read {InboundWebhook.objects.count()}")
            InboundWebhook.objects.filter(pk=0).update(error="")  # a statement on its own
            done.append("statement")
            with transaction.atomic():
                InboundWebhook.objects.filter(pk=0).update(error="")
            done.append("transaction")
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(0.5)
    while_held = list(done)
    other.give()
    worker.join(timeout=30)
    other.close()

    assert while_held == ["read 0"]
    assert done == ["read 0", "statement", "transaction"]
