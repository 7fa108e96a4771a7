"""The SQLite inbox (integrations/inbox.py): a webhook request stores into a file of its own, never waiting for the
database's write lock, and every acknowledged webhook reaches the database exactly once. The kill -9 tests in
tests/e2e run the portal with it (the default on SQLite)."""

import sqlite3
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from integrations import inbox
from integrations.models import InboundWebhook, WebhookInboxMark
from portal.schedules import PROCESS_WEBHOOKS_TASK
from surveys.intake import process as intake
from surveys.models import SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.factories import AccountFactory
from tests.helpers import notification, post_webhook, queued_tasks

pytestmark = [
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the inbox is SQLite's"),
    pytest.mark.django_db(transaction=True),  # autocommit, as a request runs: the inbox is used outside transactions
]


@pytest.fixture(autouse=True)
def inbox_on(settings):
    """The inbox on, empty: the test database is emptied after each test, so is the inbox beside it."""
    settings.WEBHOOK_INBOX = True
    yield
    if opened := getattr(inbox._local, "connection", None):
        opened.close()
        inbox._local.__dict__.clear()
    path = inbox.inbox_path()
    assert path is not None
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def closure(n: int) -> dict:
    payload = notification("conversation_admin_closed", id=f"n{n}")
    payload["data"]["item"]["id"] = f"c{n}"
    return payload


def in_inbox() -> list[str]:
    path = inbox.inbox_path()
    assert path is not None
    with sqlite3.connect(path) as reading:
        return [row[0] for row in reading.execute("SELECT notification_id FROM webhook_inbox ORDER BY id")]


def test_a_webhook_waits_in_the_inbox_until_the_intake_moves_and_acts_on_it(client, account):
    before = time.time()
    response = post_webhook(client, closure(1), process=False)
    assert (response.status_code, response.json()) == (200, {"status": "received"})
    assert not InboundWebhook.objects.exists()
    assert in_inbox() == ["n1"]
    assert [task["func"] for task in queued_tasks()] == [PROCESS_WEBHOOKS_TASK]  # the first one wakes the intake

    assert process_inbound_webhooks() == 1
    webhook = InboundWebhook.objects.get()
    assert (webhook.notification_id, webhook.status, webhook.workspace_id) == (
        "n1",
        "processed",
        account.intercom_workspace_id,
    )
    assert before <= webhook.received_at.timestamp() <= time.time()  # when it was acknowledged, not moved
    assert webhook.conversation_key.endswith("conversation c1")
    assert SurveyRequest.objects.get().inbound_webhook == webhook
    assert in_inbox() == []  # pruned once moved


def test_only_the_first_webhook_after_a_quiet_spell_wakes_the_intake(client, account):
    post_webhook(client, closure(1), process=False)
    post_webhook(client, closure(2), process=False)  # the drain the first woke moves it too
    assert len(queued_tasks()) == 1
    assert process_inbound_webhooks() == 2


def test_a_retried_notification_is_answered_duplicate_in_the_inbox_and_after(client, account):
    assert post_webhook(client, closure(1), process=False).json() == {"status": "received"}
    assert post_webhook(client, closure(1), process=False).json() == {"status": "duplicate"}
    process_inbound_webhooks()
    assert post_webhook(client, closure(1), process=False).json() == {"status": "duplicate"}
    assert InboundWebhook.objects.count() == 1


def test_a_move_undone_with_its_batch_is_moved_again_and_never_twice(client, account):
    for n in range(3):
        post_webhook(client, closure(n), process=False)
    with pytest.raises(RuntimeError), transaction.atomic():  # a drain killed after moving, before its commit
        assert inbox.inbox_move(limit=10) == 3
        raise RuntimeError
    assert not InboundWebhook.objects.exists()
    with transaction.atomic():
        assert inbox.inbox_move(limit=2) == 2
    WebhookInboxMark.objects.update(moved_up_to=0)  # as if the watermark were lost: the rows are not stored twice
    with transaction.atomic():
        assert inbox.inbox_move(limit=10) == 3
    assert sorted(InboundWebhook.objects.values_list("notification_id", flat=True)) == ["n0", "n1", "n2"]
    assert process_inbound_webhooks() == 3


def test_a_webhook_is_acknowledged_while_the_cluster_holds_the_databases_write_lock(client, account):
    post_webhook(client, closure(0), process=False)  # the intake is woken: later ones don't write to the database
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a drain's batch holds, for as long as its process takes
    try:
        started = time.monotonic()
        response = post_webhook(client, closure(1), process=False)
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (response.status_code, response.json()) == (200, {"status": "received"})
    assert took < 1, f"the request waited {took:.1f} s for the database's write lock"
    assert process_inbound_webhooks() == 2


def test_no_webhook_wakes_the_intake_while_a_drain_is_at_work(client, account):
    with inbox.inbox_draining() as alone:  # a drain at work
        assert alone
        post_webhook(client, closure(1), process=False)
        assert queued_tasks() == []  # no write to the database: the drain looks at the inbox again as it stops
        assert process_inbound_webhooks() == 0  # and a second drain leaves it to the one at work
    assert inbox.inbox_waiting() == 1  # what the drain at work finds as it lets go, and drains
    assert process_inbound_webhooks() == 1


def test_a_batch_moves_more_than_it_claims_so_another_workspace_goes_before_a_burst_in_the_inbox(
    client, account, settings
):
    """The claim takes turns across workspaces among what the database has: a burst ahead in the inbox is moved
    past in one batch, so another workspace's webhook is acted on in the first batch, not after the burst's."""
    settings.INTAKE_BATCH_SIZE, settings.INTAKE_INBOX_MOVE = 3, 30
    settings.INTAKE_BATCH_TRANSACTION_SECONDS = 60  # the whole claim, however busy the machine
    other = AccountFactory(intercom_workspace_id="ws2other")
    for n in range(6):
        assert post_webhook(client, closure(n), process=False).status_code == 200
    payload = notification("conversation_admin_closed", id="b0", app_id=other.intercom_workspace_id)
    assert post_webhook(client, payload, process=False).status_code == 200

    assert intake._next_batch(deadline=float("inf"), now=None, helper_queued=False) == (3, 7, False)
    done = InboundWebhook.objects.filter(status=InboundWebhook.Status.PROCESSED).values_list("notification_id")
    assert sorted(pk for (pk,) in done) == ["b0", "n0", "n1"]
    assert SurveyRequest.objects.filter(account=other).count() == 1


def padded(n: int) -> dict:
    payload = closure(n)
    payload["data"]["item"]["padding"] = "x" * 8000  # about 3 pages of the inbox's log a webhook
    return payload


def wal_restarts(path: str) -> int:
    """How often the inbox's write-ahead log was started over after a checkpoint copied it all into the file: the
    checkpoint sequence number in the log's header."""
    with open(path + "-wal", "rb") as log:
        return int.from_bytes(log.read(16)[12:16], "big")


def test_a_webhook_request_leaves_the_inbox_checkpoint_to_the_drain(client, account):
    """SQLite makes the commit that takes the log past its checkpoint size do the checkpoint, fsyncs and all, while
    Intercom waits on the answer: the drain does it as it prunes instead."""
    path = inbox.inbox_path()
    assert path is not None
    assert post_webhook(client, padded(0), process=False).status_code == 200
    restarts = wal_restarts(path)
    for n in range(1, 500):
        assert post_webhook(client, padded(n), process=False).status_code == 200

    assert Path(path + "-wal").stat().st_size > 1000 * 4096  # past SQLite's own checkpoint size (1,000 pages)
    assert wal_restarts(path) == restarts  # no request checkpointed it

    assert process_inbound_webhooks() == 500  # moves, acts, prunes, checkpoints
    assert post_webhook(client, padded(500), process=False).status_code == 200
    assert wal_restarts(path) == restarts + 1  # the log was all in the file: the next write starts it over


def test_with_no_drain_a_request_still_checkpoints_the_inbox_past_its_bound(client, account, monkeypatch):
    """The log stays bounded while no cluster runs: past CHECKPOINT_PAGES a request checkpoints it after all."""
    monkeypatch.setattr(inbox, "CHECKPOINT_PAGES", 200)  # read as the inbox's connection opens, below
    path = inbox.inbox_path()
    assert path is not None
    assert post_webhook(client, padded(0), process=False).status_code == 200
    restarts = wal_restarts(path)
    for n in range(1, 150):  # about 450 pages of the log: past 200, not past SQLite's own 1,000
        assert post_webhook(client, padded(n), process=False).status_code == 200

    assert wal_restarts(path) > restarts
    assert Path(path + "-wal").stat().st_size < 1000 * 4096
