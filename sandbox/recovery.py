"""The sandbox's side of service recovery: Intercom's tags and assignment endpoints, and a Slack-compatible webhook,
each keeping what it received (SandboxReceived). A webhook named `ratelimited-…` plays a rate limit: its first
message is refused with 429 and Retry-After: 1, the next taken."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sandbox.intercom_api import RATE_LIMITED_PREFIX, intercom_unauthorized
from sandbox.models import SandboxReceived


def _body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _invalid(message: str) -> JsonResponse:
    return JsonResponse(
        {"type": "error.list", "errors": [{"code": "parameter_invalid", "message": message}]}, status=400
    )


@csrf_exempt
@require_POST
def intercom_tags(request: HttpRequest) -> JsonResponse:
    """POST /tags {"name"}: creates or finds the tag; its id is its name here."""
    if refused := intercom_unauthorized(request):
        return refused
    body = _body(request)
    if body is None or not isinstance(body.get("name"), str) or not body["name"].strip():
        return _invalid("name is required")
    return JsonResponse({"type": "tag", "id": body["name"][:64], "name": body["name"][:64]})


@csrf_exempt
@require_POST
def intercom_conversation_tags(request: HttpRequest, conversation_id: str) -> JsonResponse:
    """POST /conversations/{id}/tags {"id", "admin_id"}."""
    if refused := intercom_unauthorized(request):
        return refused
    body = _body(request)
    if body is None or not body.get("id") or not body.get("admin_id"):
        return _invalid("id and admin_id are required")
    SandboxReceived.objects.create(kind=SandboxReceived.Kind.TAG, target=conversation_id[:64], body=body)
    return JsonResponse({"type": "tag", "id": str(body["id"]), "name": str(body["id"])})


@csrf_exempt
@require_POST
def intercom_conversation_parts(request: HttpRequest, conversation_id: str) -> JsonResponse:
    """POST /conversations/{id}/parts {"message_type": "assignment", "type", "admin_id", "assignee_id"}."""
    if refused := intercom_unauthorized(request):
        return refused
    body = _body(request)
    if body is None or body.get("message_type") != "assignment" or body.get("type") not in ("admin", "team"):
        return _invalid("message_type must be assignment, and type admin or team")
    if not body.get("admin_id") or not body.get("assignee_id"):
        return _invalid("admin_id and assignee_id are required")
    SandboxReceived.objects.create(kind=SandboxReceived.Kind.ASSIGN, target=conversation_id[:64], body=body)
    return JsonResponse({"type": "conversation", "id": conversation_id, "admin_assignee_id": body["assignee_id"]})


@csrf_exempt
@require_POST
def text_webhook(request: HttpRequest, name: str) -> JsonResponse:
    """A Slack incoming webhook: takes {"text"} and answers ok."""
    body = _body(request)
    if body is None or not isinstance(body.get("text"), str):
        return JsonResponse({"error": "invalid_payload"}, status=400)
    received = {"kind": SandboxReceived.Kind.WEBHOOK, "target": name[:64], "body": body}
    if (
        name.startswith(RATE_LIMITED_PREFIX)
        and not SandboxReceived.objects.filter(**received, status_code=429).exists()
    ):
        SandboxReceived.objects.create(**received, status_code=429)
        response = JsonResponse({"error": "rate_limited"}, status=429)
        response["Retry-After"] = "1"
        return response
    SandboxReceived.objects.create(**received)
    return JsonResponse({"ok": True})
