import secrets
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
