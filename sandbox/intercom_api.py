"""The sandbox's Intercom: the REST calls the portal makes (records, teams, notes as replies) and the OAuth
install flow (consent page, token, GET /me), answered as Intercom answers them, from the sandbox's tables."""

import json
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sandbox.demo import WORKSPACE
from sandbox.models import (
    IntercomRecord,
    IntercomSandboxNote,
)
from surveys.accounts.oauth import SESSION_KEY as OAUTH_SESSION_KEY
from surveys.models import Account

# ---- Intercom ----


def intercom_unauthorized(request: HttpRequest) -> JsonResponse | None:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token.startswith("sandbox-"):
        return None
    error = {"code": "unauthorized", "message": "Access Token Invalid"}
    return JsonResponse({"type": "error.list", "errors": [error]}, status=401)


RATE_LIMITED_PREFIX = "ratelimited-"


@csrf_exempt
@require_POST
def intercom_conversation_reply(request: HttpRequest, conversation_id: str) -> JsonResponse:
    """POST /conversations/{id}/reply, for notes: {"message_type": "note", "type": "admin", "admin_id",
    "body"}. Keeps each note (IntercomSandboxNote) and answers with the conversation, the note as its part.

    Conversations whose id starts with `ratelimited-` play Intercom's rate limit: the first note posted to
    one is refused with 429 and X-RateLimit-Reset one second ahead (kept with status_code 429); the next
    is taken. Any conversation id is taken, stored (IntercomRecord) or not."""
    if refused := intercom_unauthorized(request):
        return refused
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    problem = _reply_invalid(body) if isinstance(body, dict) else "Request body is not valid JSON"
    if problem or not isinstance(body, dict):
        error = {"code": "parameter_invalid", "message": problem}
        return JsonResponse({"type": "error.list", "errors": [error]}, status=400)
    note = {"conversation_id": conversation_id[:64], "admin_id": str(body["admin_id"])[:64], "body": body["body"]}
    if (
        conversation_id.startswith(RATE_LIMITED_PREFIX)
        and not IntercomSandboxNote.objects.filter(conversation_id=note["conversation_id"], status_code=429).exists()
    ):
        IntercomSandboxNote.objects.create(**note, status_code=429)
        error = {"code": "rate_limit_exceeded", "message": "Rate Limit Exceeded"}
        response = JsonResponse({"type": "error.list", "errors": [error]}, status=429)
        response["X-RateLimit-Limit"] = "1000"
        response["X-RateLimit-Remaining"] = "0"
        response["X-RateLimit-Reset"] = str(int(time.time()) + 1)
        return response
    recorded = IntercomSandboxNote.objects.create(**note, status_code=200)
    return JsonResponse(_conversation_with_note(recorded))


def _reply_invalid(body: dict[str, Any]) -> str:
    """Intercom's checks on a reply, in its words; empty when it's fine."""
    if body.get("message_type") not in ("note", "comment") or body.get("type") != "admin":
        return "message_type must be note or comment, and type admin"
    if not body.get("admin_id"):
        return "admin_id is required"
    if not isinstance(body.get("body"), str) or not body["body"].strip():
        return "body is required"
    return ""


def _conversation_with_note(note: IntercomSandboxNote) -> dict[str, Any]:
    stored = IntercomRecord.objects.filter(
        kind=IntercomRecord.Kind.CONVERSATION, intercom_id=note.conversation_id
    ).first()
    conversation = dict(stored.data) if stored else {"type": "conversation", "id": note.conversation_id}
    created = int(note.received_at.timestamp())
    part = {
        "type": "conversation_part",
        "id": str(note.id),
        "part_type": "note",
        "body": note.body,
        "created_at": created,
        "updated_at": created,
        "notified_at": created,
        "assigned_to": None,
        "author": {"type": "admin", "id": note.admin_id},
        "attachments": [],
        "external_id": None,
        "redacted": False,
    }
    conversation["updated_at"] = created
    conversation["conversation_parts"] = {
        "type": "conversation_part.list",
        "conversation_parts": [part],
        "total_count": 1,
    }
    return conversation


@require_GET
def intercom_record(request: HttpRequest, kind: str, intercom_id: str) -> JsonResponse:
    if refused := intercom_unauthorized(request):
        return refused
    record = IntercomRecord.objects.filter(kind=kind, intercom_id=intercom_id).first()
    if record is None:
        error = {"code": "not_found", "message": f"Resource Not Found: {kind} {intercom_id}"}
        return JsonResponse({"type": "error.list", "errors": [error]}, status=404)
    return JsonResponse(record.data)


@require_GET
def intercom_teams(request: HttpRequest) -> JsonResponse:
    """GET /teams: every team stored (IntercomRecord of kind teams), as Intercom lists them."""
    if refused := intercom_unauthorized(request):
        return refused
    teams = IntercomRecord.objects.filter(kind=IntercomRecord.Kind.TEAM).order_by("intercom_id")
    return JsonResponse({"type": "team.list", "teams": [team.data for team in teams]})


# Intercom's OAuth install flow: a consent page, the token endpoint, and GET /me.
CODE_SALT, TOKEN_SALT = "sandbox-intercom-code", "sandbox-intercom-token"
DEMO_TOKEN_PREFIX = "sandbox-intercom-token-"


def intercom_oauth(request: HttpRequest) -> HttpResponse:
    """Intercom's consent page: a person picks the workspace and allows, or denies."""
    params = request.GET if request.method == "GET" else request.POST
    redirect_uri, state = params.get("redirect_uri", ""), params.get("state", "")
    if params.get("client_id") != settings.INTERCOM_CLIENT_ID or not redirect_uri:
        return HttpResponse("Unknown app or missing redirect_uri", status=400, content_type="text/plain")
    if request.method == "POST":
        if "allow" in request.POST:
            code = signing.dumps({"workspace": request.POST.get("workspace", "")}, salt=CODE_SALT)
            return redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")
        return redirect(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}")
    return render(request, "sandbox/intercom_oauth.html", {"params": params, "workspace": _workspace_asked(request)})


def _workspace_asked(request: HttpRequest) -> str:
    """The workspace the consent page offers: the one of the account the CSM is connecting (this browser's pending
    connection), else the demo's. An account with none yet gets one of its own, as a new Intercom workspace would."""
    pending = request.session.get(OAUTH_SESSION_KEY) or {}
    if pending.get("state") != request.GET.get("state"):
        return WORKSPACE
    account = Account.objects.filter(pk=int(pending.get("account") or 0)).first()
    if account is None:
        return WORKSPACE
    return account.intercom_workspace_id or f"sandbox-{account.pk}"


@csrf_exempt
@require_POST
def intercom_token(request: HttpRequest) -> JsonResponse:
    refused = JsonResponse(
        {"type": "error.list", "errors": [{"code": "unauthorized", "message": "Unauthorized Code"}]}, status=401
    )
    if (
        request.POST.get("client_id") != settings.INTERCOM_CLIENT_ID
        or request.POST.get("client_secret") != settings.INTERCOM_CLIENT_SECRET
    ):
        return refused
    try:
        workspace = signing.loads(request.POST.get("code", ""), salt=CODE_SALT, max_age=600)["workspace"]
    except signing.BadSignature:
        return refused
    token = "sandbox-" + signing.dumps({"workspace": workspace}, salt=TOKEN_SALT)
    return JsonResponse({"token_type": "Bearer", "token": token, "access_token": token})


@require_GET
def intercom_me(request: HttpRequest) -> JsonResponse:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        workspace = signing.loads(token.removeprefix("sandbox-"), salt=TOKEN_SALT)["workspace"]
    except signing.BadSignature:
        # The demo accounts' tokens (sandbox/demo.py) name their workspace: sandbox-intercom-token-<workspace>.
        workspace = token.removeprefix(DEMO_TOKEN_PREFIX) if token.startswith(DEMO_TOKEN_PREFIX) else ""
    if not workspace:
        error = {"code": "unauthorized", "message": "Access Token Invalid"}
        return JsonResponse({"type": "error.list", "errors": [error]}, status=401)
    return JsonResponse(
        {"type": "admin", "app": {"type": "app", "id_code": workspace, "name": f"Workspace {workspace}"}}
    )
