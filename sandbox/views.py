"""Local stand-ins for Stella's Requests API and Intercom's REST API.

Stella's validates as Stella does and answers in Stella's words; it keeps what it received.
Keys: `sandbox-test-…` is a test key, `sandbox-live-…` a production key, anything else is refused.
Intercom's answers from IntercomRecord rows for any token starting with `sandbox-`.
"""

import json
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
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
