from django.contrib import admin

from portal.admin_helpers import ReadOnlyAdminMixin
from sandbox.models import IntercomRecord, StellaEmployee, StellaSandboxRequest


@admin.register(StellaSandboxRequest)
class StellaSandboxRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "mode", "status_code", "response", "body"]
    list_filter = ["mode", "status_code"]
    show_full_result_count = False


@admin.register(StellaEmployee)
class StellaEmployeeAdmin(admin.ModelAdmin):
    list_display = ["email", "custom_id", "active"]


@admin.register(IntercomRecord)
class IntercomRecordAdmin(admin.ModelAdmin):
    list_display = ["kind", "intercom_id"]
    list_filter = ["kind"]
    search_fields = ["intercom_id"]
