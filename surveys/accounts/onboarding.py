"""Onboarding an account: asking Intercom whether its token works (here), where the account stands (the checklist
a CSM works through: checklist.py), and one real test request to Stella (test_request.py).

The checklist only reads; checking the token and sending a test request go through the same services
and send path as everything else, so what they show is what the portal will do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    IntercomMe,
    IntercomTokenMissing,
    IntercomTokenRejected,
)
from portal.crypto import SecretUndecryptable
from surveys.accounts.account import (
    account_intercom_region_observe,
    integration_health_ensure,
    intercom_token_accept,
    intercom_token_reject,
)
from surveys.accounts.checklist import (
    workspace_words,
)
from surveys.models import Account


@dataclass(frozen=True)
class IntercomCheck:
    """What Check now found, in words for the CSM; `ok` only when Intercom accepted the token for the account's
    own workspace."""

    ok: bool
    message: str
    me: IntercomMe | None = None


def account_intercom_check(account: Account, *, now: datetime) -> IntercomCheck:
    """Ask Intercom (GET /me) whether the account's token works and which workspace it is for, and record the
    answer: a refusal flags the token as rejected, an acceptance clears that and keeps the workspace. No token:
    nothing is asked, and nothing is flagged."""
    health = integration_health_ensure(account)
    try:
        integration = account.integration
        me = IntercomClient(integration.intercom_token, base_url=integration.intercom_api_url).me()
    except IntercomTokenMissing as exc:
        return IntercomCheck(ok=False, message=f"{exc}.")
    except IntercomTokenRejected:
        intercom_token_reject(account.pk, now=now)
        return IntercomCheck(ok=False, message="Intercom rejected the access token: connect with Intercom again.")
    except (IntercomError, SecretUndecryptable) as exc:
        # Unreachable, rate limited, an answer we can't read: nothing learnt about the token itself.
        return IntercomCheck(ok=False, message=f"Could not check the token: {exc}. Try again in a moment.")
    intercom_token_accept(health, checked_at=now, workspace_id=me.workspace_id, workspace_name=me.workspace_name)
    if me.workspace_id == account.intercom_workspace_id:
        account_intercom_region_observe(account, me.region)
    workspace = workspace_words(me.workspace_id, me.workspace_name)
    if me.workspace_id != account.intercom_workspace_id:
        return IntercomCheck(
            ok=False,
            me=me,
            message=f"Intercom accepted the token, but it is for {workspace}, not this account's workspace "
            f"({account.intercom_workspace_id or 'none yet'}): connect with Intercom in the account's workspace.",
        )
    return IntercomCheck(ok=True, me=me, message=f"Intercom accepted the access token: it is for {workspace}.")
