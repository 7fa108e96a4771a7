"""django-q2 entry points for the intake: a few lines each, no rules."""

from integrations.services import inbound_webhooks_process_pending


def process_inbound_webhooks() -> int:
    return inbound_webhooks_process_pending()
