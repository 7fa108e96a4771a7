from rest_framework.authtoken.models import TokenProxy

from portal.redaction import mask_secret


class ApiToken(TokenProxy):
    """A support user's API token, as the admin shows it: never the key in full, once it is made."""

    class Meta:
        proxy = True
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self) -> str:
        return f"{self.user} ({mask_secret(self.key)})"
