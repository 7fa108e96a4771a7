"""Reaching an account's Stella for the loop's jobs: its sync state, a Data Return client with the key in use
and the API secret, and a failure in words a CSM may read (every stored secret masked)."""

from __future__ import annotations

from django.db.models import Model

from integrations.stella.data import (
    StellaDataClient,
    StellaDataError,
)
from portal.crypto import SecretUndecryptable
from portal.fields import EncryptedTextField
from portal.text import storable
from surveys.models import (
    Account,
    IntegrationSettings,
    StellaSyncState,
)

IN_CHUNK = 500  # ids per IN (…) list
ERROR_LENGTH = 500  # StellaSyncState's error columns


def stella_sync_state(account: Account) -> StellaSyncState:
    state, _ = StellaSyncState.objects.get_or_create(account=account)
    return state


def stella_data_client(integration: IntegrationSettings) -> StellaDataClient:
    """A client for the account's Stella with the key in use and the API secret (SecretUndecryptable if either
    can't be read), at the same base URL requests are sent to."""
    return StellaDataClient(
        base_url=integration.stella_base_url,
        api_key=integration.api_key_for(integration.mode),
        api_secret=integration.stella_secret,
    )


def error_text(exc: Exception) -> str:
    # StellaDataError and SecretUndecryptable messages are written to be shown; nothing else's is. Stella's
    # words in them are storable like any text from outside.
    if isinstance(exc, StellaDataError | SecretUndecryptable):
        return storable(str(exc))[:ERROR_LENGTH]
    return f"Unexpected error ({type(exc).__name__}): see the portal's logs"[:ERROR_LENGTH]


def account_secrets(account: Account) -> list[str]:
    """The account's stored secrets (keys, token, API secret), to mask should an error quote one."""
    integration = getattr(account, "integration", None)
    fields = IntegrationSettings._meta.concrete_fields
    return [getattr(integration, field.attname, "") for field in fields if isinstance(field, EncryptedTextField)]


def clip(value: str, model: type[Model], name: str) -> str:
    """Stella sets no length on names: cut what would not fit its column rather than lose the row."""
    max_length = getattr(model._meta.get_field(name), "max_length", None)
    return value[:max_length] if max_length else value
