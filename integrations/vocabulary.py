"""Words both layers use: where a conversation began and who it is assigned to.

The Intercom parser produces them, the survey domain stores and decides on them.
"""

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat"
    UNSUPPORTED = "unsupported", "Unsupported"


class AssigneeKind(models.TextChoices):
    ADMIN = "admin", "Teammate"
    BOT = "bot", "Bot"
    TEAM = "team", "Team"
    NOBODY = "nobody", "Unassigned"
