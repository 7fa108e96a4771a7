from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from integrations.admin import ReadOnlyAdminMixin
from surveys.models import ApiRequest


@admin.register(ApiRequest)
class ApiRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "account",
        "survey_request",
        "mode",
        "status_code",
        "outcome",
        "error_message",
        "duration_ms",
    ]
    list_filter = ["account", "mode", "outcome"]
    list_select_related = ["account", "survey_request"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiRequest]:
        return super().get_queryset(request).defer("request_body", "response_body", "request_headers")
