from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from rest_framework.authtoken.models import TokenProxy

from portal.models import ApiToken

# The lists need the width of a 1366 px laptop screen: the front page, the breadcrumbs and the tabs
# above the request lists lead around instead of a sidebar beside every page.
admin.site.enable_nav_sidebar = False

# DRF's own tokens (kept in plain text) are not used: ApiToken replaces them.
admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens, stored hashed: the key is shown in full once, when it is made, and masked after."""

    list_display = ["masked_key", "user", "created"]
    list_filter = ["created"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    search_help_text = "Username"

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        # Nothing of a token changes: to replace one, make a new one and delete the old.
        return ("user", "masked_key", "created") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return ("user", "masked_key", "created") if obj is not None else ("user",)

    @admin.display(description="key")
    def masked_key(self, token: ApiToken) -> str:
        return token.masked_key

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None) -> HttpResponse:
        messages.warning(
            request,
            f"The API token for {obj.user} is {obj.key} — copy it now and hand it over safely: it is never shown again.",
        )
        return super().response_add(request, obj, post_url_continue)
