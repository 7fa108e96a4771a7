from django.urls import path

from sandbox import inbox, intercom_api, recovery, simulate, views

urlpatterns = [
    path("stella/v1/requests", views.stella_requests, name="sandbox_stella_requests"),
    path("stella/v2/data", views.stella_data, name="sandbox_stella_data"),
    path("stella/v2/employees", views.stella_employees, name="sandbox_stella_employees"),
    path("simulate/closure/<int:account_id>", simulate.simulate_closure, name="sandbox_simulate_closure"),
    # Intercom's inbox with the inbox app in a conversation's details (README, "Inside Intercom: the inbox app").
    path("intercom/inbox", inbox.intercom_inbox, name="sandbox_intercom_inbox"),
    path("intercom/oauth", intercom_api.intercom_oauth, name="sandbox_intercom_oauth"),
    path("intercom/auth/eagle/token", intercom_api.intercom_token, name="sandbox_intercom_token"),
    path("intercom/me", intercom_api.intercom_me, name="sandbox_intercom_me"),
    path("intercom/teams", intercom_api.intercom_teams, name="sandbox_intercom_teams"),
    # Before the catch-all record route below: a note is a POST to a conversation's /reply.
    path(
        "intercom/conversations/<str:conversation_id>/reply",
        intercom_api.intercom_conversation_reply,
        name="sandbox_intercom_conversation_reply",
    ),
    # Service recovery's tag and assignment, and a Slack-compatible webhook.
    path("intercom/tags", recovery.intercom_tags, name="sandbox_intercom_tags"),
    path(
        "intercom/conversations/<str:conversation_id>/tags",
        recovery.intercom_conversation_tags,
        name="sandbox_intercom_conversation_tags",
    ),
    path(
        "intercom/conversations/<str:conversation_id>/parts",
        recovery.intercom_conversation_parts,
        name="sandbox_intercom_conversation_parts",
    ),
    path("webhook/<str:name>", recovery.text_webhook, name="sandbox_text_webhook"),
    path("intercom/<str:kind>/<str:intercom_id>", intercom_api.intercom_record, name="sandbox_intercom_record"),
]
