"""An account's Intercom teammates, as looked up, and the Stella employee each is."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from integrations import messages
from integrations.intercom.client import IntercomClient, IntercomNotFound
from integrations.vocabulary import email_normalised
from surveys.models import Teammate


def teammate_look_up(account_id: int, intercom_id: str, *, client: IntercomClient, now: datetime) -> Teammate:
    """A teammate from the cache, fetched from Intercom when unknown or older than INTERCOM_TEAMMATE_TTL."""
    teammate = Teammate.objects.filter(account_id=account_id, intercom_id=intercom_id).first()
    fresh_since = now - timedelta(seconds=settings.INTERCOM_TEAMMATE_TTL)
    if teammate and teammate.email and teammate.fetched_at and teammate.fetched_at > fresh_since:
        return teammate
    try:
        admin = client.admin(intercom_id)
    except IntercomNotFound:
        raise IntercomNotFound(messages.STELLA_EMPLOYEE_NOT_FOUND.words) from None
    teammate, _ = Teammate.objects.update_or_create(
        account_id=account_id,
        intercom_id=intercom_id,
        defaults={
            "name": admin.name,
            "email": email_normalised(admin.email),
            "is_bot": admin.is_bot,
            "fetched_at": now,
        },
    )
    return teammate
