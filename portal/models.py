import functools
import secrets
import zoneinfo
from typing import Any

from django.conf import settings
from django.db import models

from portal.fields import Digest, SHA256Field


class ApiToken(models.Model):
    """A support user's key to the JSON API (`Authorization: Token <key>`).

    Only the SHA-256 of the key is stored, and its last 4 characters to tell tokens apart: its holder sees
    the key once, when it is made (the admin's message, `manage.py api_token_create`). Shaped like DRF's
    Token (`user`, `key`, `created`), so DRF's TokenAuthentication finds one by its key (`model = ApiToken`).
    """

    key = SHA256Field(unique=True, editable=False)
    key_end = models.CharField(max_length=4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"
        verbose_name_plural = "API tokens"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.user} ({self.masked_key})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # As DRF's Token does: a new token gets a random key, readable on this object until it is gone.
        if not self.key:
            self.key = secrets.token_hex(20)
        if not isinstance(self.key, Digest):
            self.key_end = self.key[-4:]
        super().save(*args, **kwargs)

    @property
    def masked_key(self) -> str:
        return f"••••{self.key_end}"


# Offered first in the zone picker: where support teams and CSMs mostly are. Any other zone is listed after.
COMMON_TIME_ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Amsterdam",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
]


@functools.cache
def time_zones() -> tuple[list[str], list[str]]:
    """Every zone a user can pick: the common ones, and the rest of the zone database by name (read once: listing
    it walks the zone files)."""
    available = zoneinfo.available_timezones()
    common = [name for name in COMMON_TIME_ZONES if name == "UTC" or name in available]
    return common, sorted(available - set(common) - {"localtime", "Factory"})


def time_zone_or_utc(name: str | None) -> zoneinfo.ZoneInfo:
    """The zone of that name, or UTC for an empty or unknown one (a zone the database dropped since it was saved)."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


class UserPreference(models.Model):
    """What a user chose for themselves: the time zone every page (the status page, the admin) shows times in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA zone name, e.g. Europe/Amsterdam.")

    class Meta:
        verbose_name = "user preference"
        verbose_name_plural = "user preferences"

    def __str__(self) -> str:
        return f"{self.user}: times in {self.time_zone}"


class ClusterHeartbeat(models.Model):
    """A task cluster (`manage.py runcluster`) saying it is alive, every CLUSTER_HEARTBEAT_SECONDS, with what its
    processes counted (for /metrics). django-q2 keeps its own cluster statistics in the cache, which is each
    process's memory by default: the web process could not see them. One row per cluster process (its host and
    pid); a cluster that stops deletes its own, and rows not renewed for a day are deleted by the others."""

    name = models.CharField(max_length=200, unique=True, help_text="host:pid of the cluster's main process.")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    metrics = models.JSONField(default=list, blank=True, help_text="Its processes' counts (portal.metrics).")

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return f"Cluster {self.name}, alive at {self.beat_at:%Y-%m-%d %H:%M:%S}"
