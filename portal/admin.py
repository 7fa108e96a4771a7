from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from portal.models import ApiToken
from portal.redaction import mask_secret

admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(TokenAdmin):
    """DRF's token admin, with the key masked everywhere; its holder sees it in full once, when it is made."""

    list_display = ["masked_key", "user", "created"]

    @admin.display(description="key")
    def masked_key(self, token: ApiToken) -> str:
        return mask_secret(token.key)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None) -> HttpResponse:
        messages.warning(
            request,
            f"The API token for {obj.user} is {obj.key} — copy it now and hand it over safely: it is never shown again.",
        )
        return super().response_add(request, obj, post_url_continue)
