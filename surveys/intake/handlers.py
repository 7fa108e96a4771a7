"""What each topic does to an account's conversations: a close goes to the batch (surveys/intake/batch.py), a reopen,
reply, snooze, deletion or tag is recorded as an event that may cancel or re-decide waiting closes, and a deleted
contact is erased."""

from __future__ import annotations

from collections.abc import Callable

from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from surveys.accounts.privacy import contact_erase
from surveys.intake.batch import IntakeBatch
from surveys.models import Account, ConversationEvent

CLOSED = "conversation.admin.closed"

# A topic's handler: what to do with the notification, through the batch (which keeps them in order); returns why it
# was ignored, or "".
Handler = Callable[[Account, IntercomNotification, InboundWebhook, IntakeBatch], str]


def closed(account: Account, notification: IntercomNotification, webhook: InboundWebhook, batch: IntakeBatch) -> str:
    batch.close(account=account, notification=notification, webhook=webhook)
    return ""


def _event(kind: ConversationEvent.Kind) -> Handler:
    def record(
        account: Account, notification: IntercomNotification, webhook: InboundWebhook, batch: IntakeBatch
    ) -> str:
        tags: list[str] = []
        if kind == ConversationEvent.Kind.TAGGED:
            assert notification.conversation is not None
            tags = list(notification.conversation.first_message_tags)
            if not tags:
                return "Tag is not on the first message"
        assert notification.conversation_id is not None
        batch.event(
            account=account,
            conversation_id=notification.conversation_id,
            kind=kind,
            occurred_at=notification.created_at,
            tags=tags,
            webhook=webhook,
        )
        return ""

    return record


def _contact_deleted(
    account: Account, notification: IntercomNotification, webhook: InboundWebhook, batch: IntakeBatch
) -> str:
    contact_id = notification.contact_id
    assert contact_id is not None, "the parser requires a contact.deleted item's id"
    batch.write(lambda: contact_erase(account=account, contact_id=contact_id, webhook=webhook, now=batch.now))
    return ""


HANDLERS: dict[str, Handler] = {
    CLOSED: closed,
    "conversation.admin.opened": _event(ConversationEvent.Kind.REOPENED),
    "conversation.user.replied": _event(ConversationEvent.Kind.CUSTOMER_REPLIED),
    "conversation.admin.snoozed": _event(ConversationEvent.Kind.SNOOZED),
    "conversation.deleted": _event(ConversationEvent.Kind.DELETED),
    "conversation_part.tag.created": _event(ConversationEvent.Kind.TAGGED),
    "contact.deleted": _contact_deleted,
}
