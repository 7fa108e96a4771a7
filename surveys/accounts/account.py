"""Everything an account can do: created, configured, connected to Intercom, paused and resumed.

What a CSM chose (IntegrationSettings) and what the portal found (IntegrationHealth) change
only here, each through a service that says what it does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from portal.fields import UNDECRYPTABLE, Ciphertext
from portal.history import Source, configuration_changed_by
from surveys.models import Account, IntegrationHealth, IntegrationSettings, StellaSyncState

logger = logging.getLogger(__name__)

# Changing one of these may make a key Stella refused work again: the pause it caused is lifted.
STELLA_CREDENTIALS = ("mode", "test_api_key", "production_api_key", "stella_api_url")
SECRETS = ("test_api_key", "production_api_key", "intercom_access_token")


def account_upsert(
    *,
    workspace_id: str,
    name: str | None = None,
    new_workspace_id: str | None = None,
    support_users_add: Iterable[User] = (),
    support_users_remove: Iterable[User] = (),
    **settings_fields: Any,
) -> tuple[Account, bool]:
    """Create or update an account, its settings and its support users in one go: scripted onboarding
    without the admin, with everything the admin sets. The settings go through integration_settings_update
    (a new key lifts a pause). `new_workspace_id` moves the account to another workspace id; run again,
    it finds the account there. Raises ValidationError, by field, and then changes nothing."""
    with transaction.atomic():
        account = _account_to_upsert(workspace_id, new_workspace_id=new_workspace_id)
        created = account is None
        if account is None:
            account = Account(intercom_workspace_id=workspace_id, name=name or workspace_id)
        changed = created or bool(name and account.name != name)
        account.name = name or account.name
        if new_workspace_id and account.intercom_workspace_id != new_workspace_id:
            account.intercom_workspace_id, changed = new_workspace_id, True
        if changed:
            account.full_clean()
            account.save()
        integration = IntegrationSettings.objects.filter(account=account).first() or IntegrationSettings(
            account=account
        )
        integration_settings_update(integration, **settings_fields)
        account.support_users.add(*support_users_add)
        account.support_users.remove(*support_users_remove)
    return account, created


def _account_to_upsert(workspace_id: str, *, new_workspace_id: str | None) -> Account | None:
    """The account of `workspace_id`; when it is to move, and an earlier run moved it, the one at its new id."""
    account = Account.objects.filter(intercom_workspace_id=workspace_id).first()
    if account is None and new_workspace_id:
        account = Account.objects.filter(intercom_workspace_id=new_workspace_id).first()
        if account is None:
            raise ValidationError(
                {"intercom_workspace_id": f"No account has workspace id {workspace_id}, to move to {new_workspace_id}."}
            )
    return account


def integration_settings_update(integration: IntegrationSettings, **changes: Any) -> IntegrationSettings:
    """Save what a CSM chose. A new key, mode or Stella URL lifts a pause Stella's refusal caused;
    a new Intercom token clears the flag for a rejected one."""
    stored = IntegrationSettings.objects.filter(pk=integration.pk).first() if integration.pk else None
    for field, value in changes.items():
        setattr(integration, field, value)
    integration.full_clean()
    with transaction.atomic():
        integration.save()
        health = integration_health_ensure(integration.account)
        if stored is not None and any(getattr(stored, f) != getattr(integration, f) for f in STELLA_CREDENTIALS):
            integration_resume(health)
            # Whether another key shares the old one's sequence ids isn't known: read Stella's data from the
            # start (records are upserted by uuid, and counts move only by differences).
            StellaSyncState.objects.filter(account_id=integration.account_id).update(
                feedback_cursor=None, feedback_retry_at=None
            )
        if stored is not None and stored.intercom_access_token != integration.intercom_access_token:
            intercom_token_accept(health)
        integrations_resume_decryptable(account_id=integration.account_id)
    return integration


def integration_health_ensure(account: Account) -> IntegrationHealth:
    health, _ = IntegrationHealth.objects.get_or_create(account=account)
    return health


class WorkspaceChangeUnconfirmed(Exception):
    """The token is for another workspace than the account's own: a person confirms the switch first."""

    def __init__(self, *, current: str, new: str) -> None:
        super().__init__(f"The account's workspace is {current}, the token's {new}")
        self.current, self.new = current, new


def account_connect_intercom(
    account: Account,
    *,
    workspace_id: str,
    token: str,
    now: datetime,
    workspace_name: str = "",
    confirmed: bool = False,
    region: str | None = None,
) -> Account:
    """Point the account at the workspace Intercom says the token is for, and keep the token (and the workspace's
    region, where Intercom said it).

    An account with a workspace id of its own moves to another workspace only when `confirmed`
    (else WorkspaceChangeUnconfirmed), since that workspace's webhooks then come to it instead.
    Raises IntegrityError when another account has that workspace.
    """
    current = account.intercom_workspace_id
    if current and current != workspace_id and not confirmed:
        raise WorkspaceChangeUnconfirmed(current=current, new=workspace_id)
    with transaction.atomic():
        account.intercom_workspace_id = workspace_id
        account.save(update_fields=["intercom_workspace_id"])
        region_change = {"intercom_region": region} if region else {}
        integration_settings_update(account.integration, intercom_access_token=token, **region_change)
        # Intercom has just said which workspace the token is for.
        health = integration_health_ensure(account)
        intercom_token_accept(health, checked_at=now, workspace_id=workspace_id, workspace_name=workspace_name)
    logger.info(
        "account.intercom_connected", extra={"account": account.pk, "workspace_changed": current != workspace_id}
    )
    return account


def account_intercom_region_observe(account: Account, region: str | None) -> bool:
    """Intercom said where the account's workspace is hosted (`workspace_region`, `app.region`): from now on its
    calls go to that region's host. Recorded as told by Intercom; nothing when it said nothing or the same.
    Returns whether the region changed."""
    integration = IntegrationSettings.objects.filter(account=account).first()
    if not region or integration is None or integration.intercom_region == region:
        return False
    with configuration_changed_by(Source.INTERCOM):
        integration_settings_update(integration, intercom_region=region)
    logger.info("account.intercom_region_changed", extra={"account": account.pk, "region": region})
    return True


def integration_pause(account_id: int, *, reason: str, now: datetime) -> bool:
    """Stop sending for an account until a CSM changes a key, the mode or the Stella URL.
    Returns False when it was paused already (the first reason stands)."""
    paused = IntegrationHealth.objects.filter(account_id=account_id, sending_paused_at__isnull=True).update(
        sending_paused_at=now, sending_paused_reason=reason
    )
    if paused:
        logger.warning("account.sending_paused", extra={"account": account_id, "reason": reason})
    return bool(paused)


def integration_resume(health: IntegrationHealth) -> None:
    if health.sending_paused_at:
        logger.info("account.sending_resumed", extra={"account": health.account_id})
    IntegrationHealth.objects.filter(pk=health.pk).update(sending_paused_at=None, sending_paused_reason="")
    health.sending_paused_at, health.sending_paused_reason = None, ""


def integrations_resume_decryptable(*, account_id: int | None = None) -> int:
    """Lift the pauses a secret the portal couldn't decrypt caused, where every secret decrypts again (its key
    is back in FIELD_ENCRYPTION_KEYS, or the secret was entered again). Returns how many accounts resumed."""
    paused = IntegrationHealth.objects.filter(sending_paused_reason__contains=UNDECRYPTABLE)
    if account_id is not None:
        paused = paused.filter(account_id=account_id)
    resumed = 0
    for health in paused.select_related("account__integration"):
        integration = health.account.integration
        if not any(isinstance(getattr(integration, name), Ciphertext) for name in SECRETS):
            integration_resume(health)
            resumed += 1
    return resumed


def intercom_token_reject(account_id: int, *, now: datetime) -> None:
    """Intercom refused the account's token: flag it until a new one is stored."""
    IntegrationHealth.objects.filter(account_id=account_id).update(
        intercom_token_rejected_at=now,
        intercom_token_checked_at=now,
        intercom_token_workspace_id="",
        intercom_token_workspace_name="",
    )
    logger.warning("intercom.token_rejected", extra={"account": account_id})


def intercom_token_accept(
    health: IntegrationHealth, *, checked_at: datetime | None = None, workspace_id: str = "", workspace_name: str = ""
) -> None:
    """The token is not (or no longer) known to be rejected. With `checked_at`: Intercom accepted it then, for
    `workspace_id`; without: a new token, which nobody has asked Intercom about yet."""
    fields = {
        "intercom_token_rejected_at": None,
        "intercom_token_checked_at": checked_at,
        "intercom_token_workspace_id": workspace_id if checked_at else "",
        "intercom_token_workspace_name": workspace_name if checked_at else "",
    }
    IntegrationHealth.objects.filter(pk=health.pk).update(**fields)
    for name, value in fields.items():
        setattr(health, name, value)


# ---- Inbox app and service recovery ----
INBOX_APP_SEEN_EVERY = timedelta(hours=1)


def account_inbox_app_seen(account: Account, *, now: datetime) -> None:
    """Intercom asked for the inbox app's canvas in the account's workspace: the app is installed (kept to the
    hour, so a busy inbox writes once an hour)."""
    stale = Q(inbox_app_seen_at__isnull=True) | Q(inbox_app_seen_at__lt=now - INBOX_APP_SEEN_EVERY)
    IntegrationHealth.objects.filter(stale, account=account).update(inbox_app_seen_at=now)
