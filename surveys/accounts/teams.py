"""An account's Intercom teams, by name, for the CSM choosing which to survey (the team rules name them by id)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import cache

from integrations.intercom.client import IntercomClient, IntercomError, IntercomTeam
from portal.crypto import SecretUndecryptable
from surveys.models import IntegrationSettings

TEAMS_CACHED_SECONDS = 600


@dataclass(frozen=True)
class AccountTeams:
    teams: list[IntercomTeam]
    problem: str  # why Intercom couldn't say, in its client's words; "" when it did


def account_teams(integration: IntegrationSettings) -> AccountTeams:
    """The workspace's teams as Intercom's GET /teams answers, kept 10 minutes per token (a page shown twice asks
    once); what went wrong instead, when Intercom can't answer."""
    try:
        token = integration.intercom_token
        key = "intercom-teams:" + hashlib.sha256(token.encode()).hexdigest()
        if (cached := cache.get(key)) is not None:
            return AccountTeams(cached, "")
        teams = IntercomClient(token).teams()
    except (IntercomError, SecretUndecryptable) as exc:
        return AccountTeams([], str(exc))
    cache.set(key, teams, TEAMS_CACHED_SECONDS)
    return AccountTeams(teams, "")
