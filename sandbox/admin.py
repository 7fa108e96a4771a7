from django.contrib import admin

from portal.admin_helpers import ReadOnlyAdminMixin
from sandbox.models import (
    IntercomRecord,
    IntercomSandboxNote,
    SandboxReceived,
    StellaSandboxEmployee,
    StellaSandboxFeedback,
    StellaSandboxRequest,
)


@admin.register(StellaSandboxRequest)
class StellaSandboxRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "mode", "status_code", "response", "body"]
    list_filter = ["mode", "status_code"]
    show_full_result_count = False


@admin.register(StellaSandboxFeedback)
class StellaSandboxFeedbackAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "sequence_id",
        "mode",
        "ext_interaction_id",
        "channel",
        "employee_email",
        "request_delivery_status",
        "response_received_at",
        "respond_at",
    ]
    list_filter = ["mode", "request_delivery_status", "channel"]
    search_fields = ["ext_interaction_id", "employee_email", "customer_email"]
    show_full_result_count = False


@admin.register(StellaSandboxEmployee)
class StellaSandboxEmployeeAdmin(admin.ModelAdmin):
    list_display = ["email", "custom_id", "first_name", "last_name", "active"]


@admin.register(IntercomRecord)
class IntercomRecordAdmin(admin.ModelAdmin):
    list_display = ["kind", "intercom_id"]
    list_filter = ["kind"]
    search_fields = ["intercom_id"]


@admin.register(IntercomSandboxNote)
class IntercomSandboxNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "conversation_id", "admin_id", "status_code", "body"]
    list_filter = ["status_code"]
    search_fields = ["conversation_id"]
    show_full_result_count = False


@admin.register(SandboxReceived)
class SandboxReceivedAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What service recovery did in the sandbox: tags, assignments, webhook messages."""

    list_display = ["received_at", "kind", "target", "status_code", "body"]
    list_filter = ["kind", "status_code"]
    search_fields = ["target"]
    show_full_result_count = False
