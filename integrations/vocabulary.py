"""Words both layers use: where a conversation began and who it is assigned to.

The Intercom parser produces them, the survey domain stores and decides on them.
"""

from datetime import timedelta

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat"
    UNSUPPORTED = "unsupported", "Unsupported"


class IntercomRegion(models.TextChoices):
    """Where Intercom hosts a workspace's data, and so which of its API hosts serves the workspace."""

    US = "us", "United States"
    EU = "eu", "Europe"
    AU = "au", "Australia"


class AssigneeKind(models.TextChoices):
    ADMIN = "admin", "Teammate"
    BOT = "bot", "Bot"
    TEAM = "team", "Team"
    NOBODY = "nobody", "Unassigned"


def email_normalised(value: str | None) -> str:
    """An email as the portal stores and compares it: trimmed, lower case; "" for none. The one normalisation:
    Intercom's, Stella's and a CSM's emails meet in the same columns."""
    return (value or "").strip().lower()


# How far ahead of our clock a notification's time may be, for two questions. A time more than a day ahead is
# no real time at all: the parser refuses the payload as malformed. One up to a day ahead parses, but more than
# a few minutes ahead is a forged or broken clock: the webhook is stored, and not acted on.
MALFORMED_AHEAD = timedelta(days=1)
CLOCK_SKEW_ALLOWED = timedelta(minutes=10)
