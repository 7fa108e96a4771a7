"""Intercom webhooks in: the request stores them, a task acts on them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from integrations.intercom.payloads import IntercomNotification, PayloadError
from integrations.intercom.signature import signature_is_valid
from integrations.models import Account, ConversationEvent, InboundWebhook, IntegrationSettings
from portal.queue import enqueue
from portal.redaction import redact_headers
from surveys.services import survey_request_schedule, survey_requests_apply_event

logger = logging.getLogger(__name__)

PROCESS_TASK = "integrations.tasks.process_inbound_webhooks"


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
        enqueue(PROCESS_TASK)


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


def inbound_webhooks_process_pending(*, limit: int = 1000) -> int:
    """Act on received webhooks until none is left, oldest notification first: Intercom
    doesn't promise order, its created_at does.

    Each webhook is processed in its own transaction; one that fails is marked failed with
    its error (replayable from the admin) and doesn't hold up the others. Past `limit`,
    a fresh task takes over, so one run stays well inside the task timeout.
    """
    done = 0
    while True:
        if done == limit:
            enqueue(PROCESS_TASK)
            break
        with transaction.atomic():
            webhook = (
                InboundWebhook.objects.select_for_update(skip_locked=True)
                .filter(status=InboundWebhook.Status.RECEIVED)
                .order_by("occurred_at", "pk")
                .first()
            )
            if webhook is None:
                break
            _process_or_fail(webhook)
        done += 1
    return done


REPLAYABLE = (InboundWebhook.Status.PROCESSED, InboundWebhook.Status.IGNORED, InboundWebhook.Status.FAILED)


def inbound_webhook_replay(webhook: InboundWebhook) -> InboundWebhook:
    """Act on a stored webhook again, now: after a fix, or an account created for its workspace.
    A closure already recorded is not recorded twice; a webhook that failed verification never replays."""
    if webhook.status not in REPLAYABLE:
        raise ValueError(f"A webhook that is {webhook.get_status_display().lower()} can't be replayed.")
    with transaction.atomic():
        webhook.status, webhook.error, webhook.processed_at = InboundWebhook.Status.RECEIVED, "", None
        webhook.save(update_fields=["status", "error", "processed_at"])
        _process_or_fail(webhook)
    return webhook


def _process_or_fail(webhook: InboundWebhook) -> None:
    try:
        with transaction.atomic():
            inbound_webhook_process(webhook)
    except OperationalError:
        raise  # the database is unreachable or locked: leave it received for the next run
    except Exception as exc:
        logger.exception("intercom.webhook.failed", extra={"webhook": webhook.pk})
        _finish(webhook, InboundWebhook.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000])


def inbound_webhook_process(webhook: InboundWebhook) -> None:
    """Hand a stored notification to its topic's handler and record what came of it."""
    notification = IntercomNotification.from_json(webhook.body, app_url=settings.INTERCOM_APP_URL)
    handler = HANDLERS.get(notification.topic)
    if handler is None:
        _finish(webhook, InboundWebhook.Status.IGNORED, f"Topic {notification.topic} is not acted on")
        return
    account = Account.objects.select_related("settings").filter(intercom_workspace_id=notification.app_id).first()
    if account is None:
        _finish(webhook, InboundWebhook.Status.IGNORED, f"No account for workspace {notification.app_id}")
        return
    webhook.account = account
    if not account.settings.enabled:
        _finish(webhook, InboundWebhook.Status.IGNORED, "Integration disabled for this account")
        return
    ignored_because = handler(account, notification, webhook)
    if ignored_because:
        _finish(webhook, InboundWebhook.Status.IGNORED, ignored_because)
    else:
        _finish(webhook, InboundWebhook.Status.PROCESSED, "")


def _finish(webhook: InboundWebhook, status: str, error: str) -> None:
    webhook.status = status
    webhook.error = error
    webhook.processed_at = timezone.now()
    webhook.save(update_fields=["account", "status", "error", "processed_at"])


def _closed(account: Account, notification: IntercomNotification, webhook: InboundWebhook) -> str:
    survey_request_schedule(account=account, notification=notification, webhook=webhook)
    return ""


def _event(kind: ConversationEvent.Kind) -> Callable[[Account, IntercomNotification, InboundWebhook], str]:
    def record(account: Account, notification: IntercomNotification, webhook: InboundWebhook) -> str:
        tags: list[str] = []
        if kind == ConversationEvent.Kind.TAGGED:
            assert notification.conversation is not None
            tags = list(notification.conversation.first_message_tags)
            if not tags:
                return "Tag is not on the first message"
        assert notification.conversation_id is not None
        event = ConversationEvent.objects.create(
            account=account,
            conversation_id=notification.conversation_id,
            kind=kind,
            occurred_at=notification.created_at,
            tags=tags,
            inbound_webhook=webhook,
        )
        survey_requests_apply_event(event)
        return ""

    return record


HANDLERS: dict[str, Callable[[Account, IntercomNotification, InboundWebhook], str]] = {
    "conversation.admin.closed": _closed,
    "conversation.admin.opened": _event(ConversationEvent.Kind.REOPENED),
    "conversation.user.replied": _event(ConversationEvent.Kind.CUSTOMER_REPLIED),
    "conversation.admin.snoozed": _event(ConversationEvent.Kind.SNOOZED),
    "conversation.deleted": _event(ConversationEvent.Kind.DELETED),
    "conversation_part.tag.created": _event(ConversationEvent.Kind.TAGGED),
}


def account_upsert(*, workspace_id: str, name: str | None = None, **settings_fields: object) -> tuple[Account, bool]:
    """Create or update an account and its settings in one go: scripted onboarding without the admin."""
    with transaction.atomic():
        account, created = Account.objects.get_or_create(
            intercom_workspace_id=workspace_id, defaults={"name": name or workspace_id}
        )
        if name and account.name != name:
            account.name = name
            account.save(update_fields=["name"])
        integration, _ = IntegrationSettings.objects.get_or_create(account=account)
        for field, value in settings_fields.items():
            setattr(integration, field, value)
        integration.full_clean()
        integration.save()
    account.settings = integration
    return account, created
