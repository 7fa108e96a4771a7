"""The SQLite inbox (integrations/inbox.py) with a real cluster killed with SIGKILL while it moves and processes
webhooks, then restarted: every acknowledged webhook is stored once and acted on once."""

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection

from integrations import inbox
from integrations.models import InboundWebhook
from surveys.models import IntegrationSettings, SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.e2e.test_cluster_faults import CLUSTER, start_cluster, stop
from tests.factories import AccountFactory
from tests.helpers import WORKSPACE_ID, notification, post_webhook, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the inbox is SQLite's"),
]

WEBHOOKS = 400


@pytest.fixture
def inbox_on(settings):
    settings.WEBHOOK_INBOX = True
    yield
    if opened := getattr(inbox._local, "connection", None):
        opened.close()
        inbox._local.__dict__.clear()
    path = inbox.inbox_path()
    assert path is not None
    for suffix in ("", "-wal", "-shm", ".drain"):
        Path(path + suffix).unlink(missing_ok=True)


def closure(n: int) -> dict:
    payload = notification("conversation_admin_closed", id=f"n{n}", created_at=int(time.time()))  # the cluster's window
    payload["data"]["item"]["id"] = f"c{n}"
    return payload


def processed() -> int:
    return InboundWebhook.objects.exclude(status=InboundWebhook.Status.RECEIVED).count()


def test_a_cluster_killed_while_moving_from_the_inbox_stores_and_acts_on_each_webhook_once(
    client, inbox_on, refused_url
):
    account = AccountFactory(intercom_workspace_id=WORKSPACE_ID)
    IntegrationSettings.objects.filter(account=account).update(channel_delay=timedelta(hours=1))  # processing only
    for n in range(WEBHOOKS):
        assert post_webhook(client, closure(n), process=False).json() == {"status": "received"}
    assert inbox.inbox_waiting() == WEBHOOKS

    small_batches = {**CLUSTER, "INTAKE_BATCH_SIZE": "10", "INTAKE_BATCH_TRANSACTION_SECONDS": "0.05"}
    cluster = start_cluster(refused_url, settings=small_batches)
    try:
        wait_until(lambda: processed() >= 40, timeout=60, message=processed, interval=0.05)
        stop(cluster, signal.SIGKILL)
        assert processed() < WEBHOOKS, "all processed before the kill: nothing was tested"
        cluster = start_cluster(refused_url, settings=small_batches)

        def all_processed() -> bool:
            process_inbound_webhooks()  # what the minute schedule does in production, run as often as the test waits
            return processed() >= WEBHOOKS and not inbox.inbox_waiting()

        wait_until(all_processed, timeout=90, message=processed, interval=0.2)
    finally:
        stop(cluster, signal.SIGTERM)
    notification_ids = list(InboundWebhook.objects.values_list("notification_id", flat=True))
    assert sorted(notification_ids) == sorted(f"n{n}" for n in range(WEBHOOKS))  # each stored once
    assert set(InboundWebhook.objects.values_list("status", flat=True)) == {InboundWebhook.Status.PROCESSED}
    assert SurveyRequest.objects.count() == WEBHOOKS  # each acted on once
