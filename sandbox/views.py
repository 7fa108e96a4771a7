"""Local stand-ins for Stella's Requests API and Intercom's REST API.

Stella's validates as Stella does and answers in Stella's words; it keeps what it received.
Keys: `sandbox-test-…` is a test key, `sandbox-live-…` a production key, anything else is refused.
Intercom's answers from IntercomRecord rows for any token starting with `sandbox-`.
"""

import json
import time
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from portal.redaction import mask_secret
from sandbox.models import IntercomRecord, StellaEmployee, StellaSandboxRequest

STELLA_CHANNELS = {"email", "chat", "phone"}
ENABLED_CHANNELS = {"email", "chat"}
BODY_FIELDS = {
    "customer", "employee", "channel", "tags", "ext_interaction_id", "external_url",
    "do_not_send", "brand", "language", "country", "custom_properties",
}  # fmt: skip


@csrf_exempt
@require_POST
def stella_requests(request: HttpRequest) -> JsonResponse:
    answer_at = time.monotonic() + settings.SANDBOX_STELLA_LATENCY_MS / 1000
    api_key = request.headers.get("x-api-key", "")
    mode = "test" if api_key.startswith("sandbox-test-") else "live" if api_key.startswith("sandbox-live-") else ""
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if not mode:
        status, answer = 403, {"message": "Forbidden"}
    else:
        problem = _invalid(body)
        status, answer = (400, {"message": problem}) if problem else (200, body)
    StellaSandboxRequest.objects.create(
        api_key=mask_secret(api_key), mode=mode, body=body, status_code=status, response=answer
    )
    time.sleep(max(0.0, answer_at - time.monotonic()))  # SANDBOX_STELLA_LATENCY_MS, its own work included
    return JsonResponse(answer, status=status)


def _invalid(body: object) -> str:
    """Stella's own checks, in Stella's words; empty when the request is fine."""
    if not isinstance(body, dict) or not isinstance(body.get("channel"), str):
        return "Validation error: channel is required"
    if unknown := set(body) - BODY_FIELDS:
        return f"Validation error: unknown field {sorted(unknown)[0]}"
    if body["channel"] not in ENABLED_CHANNELS:
        return "Channel not enabled for company"
    employee = body.get("employee") or {}
    known = StellaEmployee.objects.filter(
        Q(email__iexact=employee.get("email") or "-") | Q(custom_id=employee.get("custom_id") or "-")
    ).first()
    if known is None:
        return "Employee not found"
    if not known.active:
        return "Deactivated employee"
    customer = body.get("customer") or {}
    try:
        validate_email(customer.get("email") or "")
    except ValidationError:
        return "Invalid customer"
    return ""


@require_GET
def intercom_record(request: HttpRequest, kind: str, intercom_id: str) -> JsonResponse:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not token.startswith("sandbox-"):
        error = {"code": "unauthorized", "message": "Access Token Invalid"}
        return JsonResponse({"type": "error.list", "errors": [error]}, status=401)
    record = IntercomRecord.objects.filter(kind=kind, intercom_id=intercom_id).first()
    if record is None:
        error = {"code": "not_found", "message": f"Resource Not Found: {kind} {intercom_id}"}
        return JsonResponse({"type": "error.list", "errors": [error]}, status=404)
    return JsonResponse(record.data)


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
    return render(request, "sandbox/intercom_oauth.html", {"params": params, "workspace": "demo"})


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
