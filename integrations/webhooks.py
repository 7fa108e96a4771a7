"""Intercom webhooks in: verify, store, and hand to the domain's processing task.

Nothing here knows accounts or surveys: the request stores what arrived and queues the
processing task by its dotted path, which acts on the stored webhook once committed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from integrations.intercom.payloads import IntercomNotification, PayloadError
from integrations.intercom.signature import signature_is_valid
from integrations.models import InboundWebhook
from portal.queue import enqueue
from portal.redaction import redact_headers
from portal.schedules import PROCESS_WEBHOOKS_TASK

logger = logging.getLogger(__name__)


class InvalidSignature(Exception):
    pass


class DuplicateNotification(Exception):
    pass


def intercom_webhook_receive(*, headers: Mapping[str, str], body: bytes, signature: str) -> InboundWebhook:
    """Verify and store one Intercom webhook; a task acts on it once it is committed.

    Raises InvalidSignature or PayloadError (stored as invalid), DuplicateNotification
    (nothing stored: Intercom retried), and lets a DatabaseError through so the caller
    answers 5xx and Intercom delivers again.
    """
    if not signature_is_valid(body, signature, settings.INTERCOM_CLIENT_SECRET):
        inbound_webhook_record(
            headers=headers, body=body, status=InboundWebhook.Status.INVALID, error="Signature mismatch"
        )
        raise InvalidSignature
    try:
        notification = IntercomNotification.from_json(body, app_url=settings.INTERCOM_APP_URL)
    except PayloadError as exc:
        inbound_webhook_record(headers=headers, body=body, status=InboundWebhook.Status.INVALID, error=str(exc))
        raise
    webhook = inbound_webhook_record(headers=headers, body=body, notification=notification)
    transaction.on_commit(lambda: inbound_webhooks_wake(after=webhook))
    return webhook


def inbound_webhooks_wake(*, after: InboundWebhook) -> None:
    """Queue the processing task, unless an older webhook is still waiting for one.

    The task drains until no webhook is left waiting, so the task that will take the older
    one sees this one too (this one is committed before we look). In a burst, one task
    does the work of thousands. Should a task die, the broker delivers it again and a
    schedule runs the same task every minute.
    """
    if not _older_webhook_waiting(after.pk):
        enqueue(PROCESS_WEBHOOKS_TASK)


def _older_webhook_waiting(pk: int) -> bool:
    # On every webhook request: as plain SQL this costs a tenth of building the same ORM query.
    # (= InboundWebhook.objects.filter(status=RECEIVED, pk__lt=pk).exists())
    table = connection.ops.quote_name(InboundWebhook._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE status = %s AND id < %s LIMIT 1", [InboundWebhook.Status.RECEIVED, pk]
        )
        return cursor.fetchone() is not None


def inbound_webhook_record(
    *,
    headers: Mapping[str, str],
    body: bytes,
    notification: IntercomNotification | None = None,
    status: str = InboundWebhook.Status.RECEIVED,
    error: str = "",
) -> InboundWebhook:
    """Store a webhook as it arrived. A notification id seen before raises DuplicateNotification:
    the unique constraint decides, so two concurrent deliveries can't both pass."""
    webhook = InboundWebhook(
        headers=redact_headers(headers),
        body=body.decode("utf-8", errors="replace"),
        status=status,
        error=error,
    )
    if notification is not None:
        webhook.notification_id = notification.id
        webhook.topic = notification.topic
        webhook.workspace_id = notification.app_id
        webhook.occurred_at = notification.created_at
    try:
        with transaction.atomic():
            webhook.save()
    except IntegrityError:
        if notification is not None and notification.id:
            logger.info("intercom.webhook.duplicate", extra={"notification_id": notification.id})
            raise DuplicateNotification(notification.id) from None
        raise
    return webhook
