"""Everything an account can do: created, configured, connected to Intercom, paused and resumed.

What a CSM chose (IntegrationSettings) and what the portal found (IntegrationHealth) change
only here, each through a service that says what it does.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from portal.fields import UNDECRYPTABLE, Ciphertext
from surveys.models import Account, IntegrationHealth, IntegrationSettings

logger = logging.getLogger(__name__)

# Changing one of these may make a key Stella refused work again: the pause it caused is lifted.
STELLA_CREDENTIALS = ("mode", "test_api_key", "production_api_key", "stella_api_url")
SECRETS = ("test_api_key", "production_api_key", "intercom_access_token")


def account_upsert(*, workspace_id: str, name: str | None = None, **settings_fields: Any) -> tuple[Account, bool]:
    """Create or update an account and its settings in one go: scripted onboarding without the admin."""
    with transaction.atomic():
        account, created = Account.objects.get_or_create(
            intercom_workspace_id=workspace_id, defaults={"name": name or workspace_id}
        )
        if name and account.name != name:
            account.name = name
            account.save(update_fields=["name"])
        integration = IntegrationSettings.objects.filter(account=account).first() or IntegrationSettings(
            account=account
        )
        integration_settings_update(integration, **settings_fields)
    return account, created


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
        if stored is not None and stored.intercom_access_token != integration.intercom_access_token:
            intercom_token_accept(health)
        integrations_resume_decryptable(account_id=integration.account_id)
    return integration


def integration_health_ensure(account: Account) -> IntegrationHealth:
    health, _ = IntegrationHealth.objects.get_or_create(account=account)
    return health


def account_connect_intercom(account: Account, *, workspace_id: str, token: str) -> Account:
    """Point the account at the workspace Intercom says the token is for, and keep the token.
    Raises IntegrityError when another account has that workspace."""
    with transaction.atomic():
        account.intercom_workspace_id = workspace_id
        account.save(update_fields=["intercom_workspace_id"])
        integration_settings_update(account.integration, intercom_access_token=token)
    return account


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
    IntegrationHealth.objects.filter(account_id=account_id).update(intercom_token_rejected_at=now)
    logger.warning("intercom.token_rejected", extra={"account": account_id})


def intercom_token_accept(health: IntegrationHealth) -> None:
    IntegrationHealth.objects.filter(pk=health.pk).update(intercom_token_rejected_at=None)
    health.intercom_token_rejected_at = None


def account_attention(health: IntegrationHealth) -> list[str]:
    """What a CSM has to fix before this account's surveys can flow."""
    problems = []
    if health.sending_paused_at:
        problems.append(
            f"Sending paused since {health.sending_paused_at:%Y-%m-%d %H:%M} UTC: {health.sending_paused_reason}. "
            "Enter a new key (or switch mode) to resume."
        )
    if health.intercom_token_rejected_at:
        problems.append(
            f"Intercom rejected the access token on {health.intercom_token_rejected_at:%Y-%m-%d %H:%M} UTC. "
            "Connect with Intercom again, or enter a new token."
        )
    if health.error_alert_since:
        problems.append(
            f"Over 5% of the last hour's requests were invalid or failed ({health.error_alert_rate:.0f}%, "
            f"since {health.error_alert_since:%H:%M} UTC): see Invalid requests."
        )
    return problems
