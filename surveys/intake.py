"""Acting on stored Intercom webhooks: each notification to its topic's handler, in created_at order.

The request only stored them (integrations/webhooks.py); here the domain finds the account,
records events and closures, and lets the rules decide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from portal.queue import enqueue
from portal.schedules import PROCESS_WEBHOOKS_TASK
from surveys.models import Account, ConversationEvent
from surveys.privacy import contact_erase
from surveys.services import survey_request_schedule, survey_requests_apply_event

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW = timedelta(minutes=10)


def inbound_webhooks_process_pending(*, seconds: float | None = None) -> int:
    """Act on received webhooks until none is left, oldest notification first: Intercom
    doesn't promise order, its created_at does.

    Each webhook is processed in its own transaction; one that fails is marked failed with
    its error (replayable from the admin) and doesn't hold up the others. After `seconds`
    (INTAKE_BATCH_SECONDS) a fresh task takes over, so one run stays well inside the task
    timeout however slow the database is.
    """
    deadline = time.monotonic() + (settings.INTAKE_BATCH_SECONDS if seconds is None else seconds)
    done = 0
    while True:
        if time.monotonic() >= deadline:
            enqueue(PROCESS_WEBHOOKS_TASK)
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
    if webhook.erased_at:
        raise ValueError("Its body was erased (personal data): it can't be replayed.")
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
    if too_old_or_early := _outside_replay_window(notification, now=timezone.now()):
        _finish(webhook, InboundWebhook.Status.IGNORED, too_old_or_early)
        return
    handler = HANDLERS.get(notification.topic)
    if handler is None:
        _finish(webhook, InboundWebhook.Status.IGNORED, f"Topic {notification.topic} is not acted on")
        return
    account = Account.objects.select_related("integration").filter(intercom_workspace_id=notification.app_id).first()
    if account is None:
        _finish(webhook, InboundWebhook.Status.IGNORED, f"No account for workspace {notification.app_id}")
        return
    if not account.integration.enabled:
        _finish(webhook, InboundWebhook.Status.IGNORED, "Integration disabled for this account")
        return
    ignored_because = handler(account, notification, webhook)
    if ignored_because:
        _finish(webhook, InboundWebhook.Status.IGNORED, ignored_because)
    else:
        _finish(webhook, InboundWebhook.Status.PROCESSED, "")


def _outside_replay_window(notification: IntercomNotification, *, now: datetime) -> str:
    """A signed notification is still never acted on long after it was made (a replayed capture,
    a stale retry) or from the future (a forged clock)."""
    max_age = timedelta(days=settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS)
    if notification.created_at < now - max_age:
        return f"Created more than {settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS} days ago: too old to act on"
    if notification.created_at > now + MAX_CLOCK_SKEW:
        return "Created more than 10 minutes in the future: not acted on"
    return ""


def _finish(webhook: InboundWebhook, status: str, error: str) -> None:
    webhook.status = status
    webhook.error = error
    webhook.processed_at = timezone.now()
    webhook.save(update_fields=["status", "error", "processed_at"])


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


def _contact_deleted(account: Account, notification: IntercomNotification, webhook: InboundWebhook) -> str:
    assert notification.contact_id is not None, "the parser requires a contact.deleted item's id"
    contact_erase(account=account, contact_id=notification.contact_id, webhook=webhook, now=timezone.now())
    return ""


HANDLERS: dict[str, Callable[[Account, IntercomNotification, InboundWebhook], str]] = {
    "conversation.admin.closed": _closed,
    "conversation.admin.opened": _event(ConversationEvent.Kind.REOPENED),
    "conversation.user.replied": _event(ConversationEvent.Kind.CUSTOMER_REPLIED),
    "conversation.admin.snoozed": _event(ConversationEvent.Kind.SNOOZED),
    "conversation.deleted": _event(ConversationEvent.Kind.DELETED),
    "conversation_part.tag.created": _event(ConversationEvent.Kind.TAGGED),
    "contact.deleted": _contact_deleted,
}
