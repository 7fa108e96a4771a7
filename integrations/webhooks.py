"""Intercom webhooks in: verify, store, and hand to the domain's processing task.

Nothing here knows accounts or surveys: the request stores what arrived and queues the
processing task by its dotted path, which acts on the stored webhook once committed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from integrations.inbox import InboxDuplicate, inbox_path, inbox_store, inbox_wake_needed
from integrations.intercom.json_fields import PayloadError
from integrations.intercom.payloads import IntercomNotification
from integrations.intercom.signature import signature_is_valid
from integrations.models import InboundWebhook, UnverifiedWebhookCount
from portal.queue import enqueue
from portal.redaction import redact_headers
from portal.schedules import PROCESS_WEBHOOKS_TASK
from portal.write_gate import foreground_write

logger = logging.getLogger(__name__)

SIGNATURE_MISMATCH = "Signature mismatch"
UNVERIFIED_EXCERPT_BYTES = 4096
UNVERIFIED_PER_MINUTE = 60


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
        inbound_webhook_record_unverified(headers=headers, body=body)
        raise InvalidSignature
    try:
        notification = IntercomNotification.from_json(body, app_url=settings.INTERCOM_APP_URL)
    except PayloadError as exc:
        inbound_webhook_record(
            headers=headers, body=body, text=_readable(body), status=InboundWebhook.Status.INVALID, error=str(exc)
        )
        raise
    # The parser accepted it, so it is UTF-8: processing and replay read exactly the bytes the signature covered.
    text = body.decode("utf-8")
    if notification.id and not connection.in_atomic_block and inbox_path() is not None:
        return _receive_into_inbox(headers=headers, body=body, text=text, notification=notification)
    webhook = inbound_webhook_record(headers=headers, body=body, text=text, notification=notification)
    transaction.on_commit(lambda: inbound_webhooks_wake(after=webhook))
    return webhook


def _receive_into_inbox(
    *, headers: Mapping[str, str], body: bytes, text: str, notification: IntercomNotification
) -> InboundWebhook:
    """On SQLite: into the inbox, never waiting on the cluster's write lock (integrations/inbox.py). The webhook
    returned is not in the database yet: the intake moves it there."""
    webhook = _webhook(headers=headers, body=body, text=text, notification=notification)
    try:
        inbox_id = inbox_store(webhook)
    except InboxDuplicate:
        logger.info("intercom.webhook.duplicate", extra={"notification_id": notification.id})
        raise DuplicateNotification(notification.id) from None
    if inbox_wake_needed(inbox_id):
        enqueue(PROCESS_WEBHOOKS_TASK)
    return webhook


def inbound_webhooks_wake(*, after: InboundWebhook) -> None:
    """Queue the processing task, unless an older webhook is still waiting for one.

    A task drains until no webhook is left waiting, so the task that will take the older
    one sees this one too (this one is committed before we look). In a burst, the first
    webhook wakes one task, and tasks that find full batches queue more, up to
    INTAKE_DRAINS (surveys/intake/process.py). Should a task die, the broker delivers it again and a
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
    text: str,
    notification: IntercomNotification | None = None,
    status: str = InboundWebhook.Status.RECEIVED,
    error: str = "",
) -> InboundWebhook:
    """Store a webhook as it arrived (`text`: the body as stored). A notification id seen before raises
    DuplicateNotification: the unique constraint decides, so two concurrent deliveries can't both pass."""
    webhook = _webhook(headers=headers, body=body, text=text, notification=notification, status=status, error=error)
    try:
        if connection.in_atomic_block:
            with transaction.atomic():  # a savepoint: a duplicate mustn't break the caller's transaction
                _insert(webhook)
        else:
            with foreground_write():  # Intercom waits on this: on SQLite, the cluster's next batch waits for it
                _insert(webhook)  # autocommit: one round trip, where a transaction of its own would add a COMMIT
    except IntegrityError:
        if notification is not None and notification.id:
            logger.info("intercom.webhook.duplicate", extra={"notification_id": notification.id})
            raise DuplicateNotification(notification.id) from None
        raise
    return webhook


def _webhook(
    *,
    headers: Mapping[str, str],
    body: bytes,
    text: str,
    notification: IntercomNotification | None,
    status: str = InboundWebhook.Status.RECEIVED,
    error: str = "",
) -> InboundWebhook:
    webhook = InboundWebhook(
        headers=redact_headers(headers),
        body=text,
        body_size=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
        status=status,
        error=error,
    )
    if notification is not None:
        webhook.parsed = notification.stored()
        webhook.notification_id = notification.id
        webhook.topic = notification.topic
        webhook.workspace_id = notification.app_id
        webhook.occurred_at = notification.created_at
        webhook.conversation_key = conversation_key(notification)
    return webhook


def _insert(webhook: InboundWebhook) -> None:
    """webhook.save() of a new row, as a statement made once: on every webhook request, Django's INSERT compiler
    cost more than the database's work. Every column is written as save() writes it (the field's own pre_save,
    so received_at is now, and its own conversion for the database); the model sends no save signals."""
    columns, statement = _insert_statement(connection.vendor)
    params = [field.get_db_prep_save(field.pre_save(webhook, add=True), connection) for field in columns]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        webhook.pk = cursor.fetchone()[0]
    webhook._state.adding = False
    webhook._state.db = connection.alias


@functools.cache
def _insert_statement(vendor: str) -> tuple[list[Field], str]:
    """The columns an INSERT of a webhook writes (all but the id), and the statement, returning the id."""
    meta = InboundWebhook._meta
    columns = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.get_attname_column()[1] or "") for field in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    table = quote(meta.db_table)
    return columns, f"INSERT INTO {table} ({names}) VALUES ({placeholders}) RETURNING {quote('id')}"


def conversation_key(notification: IntercomNotification) -> str:
    """What a notification must be acted on in order with: its conversation, or for contact.deleted its
    contact, within its workspace. "" for the rest (a ping, a topic not acted on): ordered with nothing."""
    if notification.conversation_id:
        return f"{notification.app_id} conversation {notification.conversation_id}"
    if notification.contact_id:
        return f"{notification.app_id} contact {notification.contact_id}"
    return ""


def inbound_webhook_record_unverified(*, headers: Mapping[str, str], body: bytes) -> InboundWebhook | None:
    """Keep a bounded trace of a request that failed verification: its headers, size, SHA-256 and
    first few KiB. Anyone can send these, so past UNVERIFIED_PER_MINUTE a minute they are only counted."""
    now = timezone.now()
    recent = InboundWebhook.objects.filter(
        received_at__gte=now - timedelta(minutes=1), status=InboundWebhook.Status.INVALID, error=SIGNATURE_MISMATCH
    )
    if recent.count() >= UNVERIFIED_PER_MINUTE:
        unverified_webhooks_count(minute=now.replace(second=0, microsecond=0))
        return None
    return inbound_webhook_record(
        headers=headers,
        body=body,
        text=_readable(body[:UNVERIFIED_EXCERPT_BYTES]),
        status=InboundWebhook.Status.INVALID,
        error=SIGNATURE_MISMATCH,
    )


def unverified_webhooks_count(*, minute: datetime) -> None:
    counted = UnverifiedWebhookCount.objects.filter(minute=minute)
    if counted.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            UnverifiedWebhookCount.objects.create(minute=minute, count=1)
    except IntegrityError:  # counted meanwhile by another request
        counted.update(count=F("count") + 1)


def _readable(body: bytes) -> str:
    """A body that may not be UTF-8, as text any database stores: bad bytes and NULs escaped."""
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
