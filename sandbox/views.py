from integrations import messages
"""Local stand-ins for Stella's Requests, Data Return and User Management APIs and Intercom's REST API.
from integrations import messages

from integrations import messages
Stella's validates as Stella does and answers in Stella's words; it keeps what it received, and each
from integrations import messages
request it accepts becomes a feedback record its Data Return API serves (some answered by a made-up
from integrations import messages
customer a little later). Keys: `sandbox-test-…` is a test key, `sandbox-live-…` a production key,
from integrations import messages
anything else is refused. Data Return and User Management also want a JWT signed with
from integrations import messages
SANDBOX_STELLA_API_SECRET.
from integrations import messages
Intercom's answers from IntercomRecord rows for any token starting with `sandbox-`, and takes notes.
from integrations import messages
"""
from integrations import messages

from integrations import messages
import hashlib
from integrations import messages
import json
from integrations import messages
import time
from integrations import messages
import warnings
from integrations import messages
from datetime import datetime, timedelta
from integrations import messages
from typing import Any
from integrations import messages
from urllib.parse import urlencode
from integrations import messages

from integrations import messages
import jwt
from integrations import messages
from django.conf import settings
from integrations import messages
from django.core import signing
from integrations import messages
from django.core.exceptions import ValidationError
from integrations import messages
from django.core.validators import validate_email
from integrations import messages
from django.db import transaction
from integrations import messages
from django.db.models import F, Q
from integrations import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from integrations import messages
from django.shortcuts import redirect, render
from integrations import messages
from django.utils import timezone
from integrations import messages
from django.views.decorators.csrf import csrf_exempt
from integrations import messages
from django.views.decorators.http import require_GET, require_POST
from integrations import messages
from jwt.warnings import InsecureKeyLengthWarning
from integrations import messages

from integrations import messages
from portal.redaction import mask_secret
from integrations import messages
from sandbox.models import (
from integrations import messages
    IntercomRecord,
from integrations import messages
    IntercomSandboxNote,
from integrations import messages
    StellaSandboxCounter,
from integrations import messages
    StellaSandboxEmployee,
from integrations import messages
    StellaSandboxFeedback,
from integrations import messages
    StellaSandboxRequest,
from integrations import messages
)
from integrations import messages

from integrations import messages
# The sandbox's API secret is as short as a real Stella one may be: PyJWT would warn on every call.
from integrations import messages
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
from integrations import messages

from integrations import messages
STELLA_CHANNELS = {"email", "chat", "phone"}
from integrations import messages
ENABLED_CHANNELS = {"email", "chat"}
from integrations import messages
BODY_FIELDS = {
from integrations import messages
    "customer", "employee", "channel", "tags", "ext_interaction_id", "external_url",
from integrations import messages
    "do_not_send", "brand", "language", "country", "custom_properties",
from integrations import messages
}  # fmt: skip
from integrations import messages

from integrations import messages

from integrations import messages
@csrf_exempt
from integrations import messages
@require_POST
from integrations import messages
def stella_requests(request: HttpRequest) -> JsonResponse:
from integrations import messages
    answer_at = time.monotonic() + settings.SANDBOX_STELLA_LATENCY_MS / 1000
from integrations import messages
    api_key = request.headers.get("x-api-key", "")
from integrations import messages
    mode = _key_mode(api_key)
from integrations import messages
    try:
from integrations import messages
        body = json.loads(request.body)
from integrations import messages
    except ValueError:
from integrations import messages
        body = None
from integrations import messages
    if not mode:
from integrations import messages
        status, answer = 403, {"message": "Forbidden"}
from integrations import messages
    else:
from integrations import messages
        problem = _invalid(body)
from integrations import messages
        status, answer = (400, {"message": problem}) if problem else (200, body)
from integrations import messages
    with transaction.atomic():
from integrations import messages
        StellaSandboxRequest.objects.create(
from integrations import messages
            api_key=mask_secret(api_key), mode=mode, body=body, status_code=status, response=answer
from integrations import messages
        )
from integrations import messages
        if status == 200 and isinstance(body, dict):
from integrations import messages
            _feedback_create(body, mode=mode, company=_key_company(api_key), now=timezone.now())
from integrations import messages
    time.sleep(max(0.0, answer_at - time.monotonic()))  # SANDBOX_STELLA_LATENCY_MS, its own work included
from integrations import messages
    return JsonResponse(answer, status=status)
from integrations import messages

from integrations import messages

from integrations import messages
def _invalid(body: object) -> str:
from integrations import messages
    """Stella's own checks, in Stella's words; empty when the request is fine."""
from integrations import messages
    if not isinstance(body, dict) or not isinstance(body.get("channel"), str):
from integrations import messages
        return f"{messages.STELLA_VALIDATION_ERROR.words}: channel is required"
from integrations import messages
    if unknown := set(body) - BODY_FIELDS:
from integrations import messages
        return f"{messages.STELLA_VALIDATION_ERROR.words}: unknown field {sorted(unknown)[0]}"
from integrations import messages
    if body["channel"] not in ENABLED_CHANNELS:
from integrations import messages
        return messages.STELLA_CHANNEL_NOT_ENABLED.words
from integrations import messages
    known = _employee_named(body)
from integrations import messages
    if known is None:
from integrations import messages
        return messages.STELLA_EMPLOYEE_NOT_FOUND.words
from integrations import messages
    if not known.active:
from integrations import messages
        return messages.STELLA_EMPLOYEE_DEACTIVATED.words
from integrations import messages
    customer = body.get("customer") or {}
from integrations import messages
    try:
from integrations import messages
        validate_email(customer.get("email") or "")
from integrations import messages
    except ValidationError:
from integrations import messages
        return messages.STELLA_INVALID_CUSTOMER.words
from integrations import messages
    return ""
from integrations import messages

from integrations import messages

from integrations import messages
def _key_mode(api_key: str) -> str:
from integrations import messages
    return "test" if api_key.startswith("sandbox-test-") else "live" if api_key.startswith("sandbox-live-") else ""
from integrations import messages

from integrations import messages

from integrations import messages
def _key_company(api_key: str) -> str:
from integrations import messages
    """The company a key belongs to: its test and production keys differ only in their prefix
from integrations import messages
    (sandbox-test-key-demo, sandbox-live-key-demo), and Stella's data is the company's own."""
from integrations import messages
    return api_key.removeprefix("sandbox-test-").removeprefix("sandbox-live-")[:100]
from integrations import messages

from integrations import messages

from integrations import messages
def _object(value: Any) -> dict[str, Any]:
from integrations import messages
    return value if isinstance(value, dict) else {}
from integrations import messages

from integrations import messages

from integrations import messages
def _employee_named(body: dict[str, Any]) -> StellaSandboxEmployee | None:
from integrations import messages
    employee = _object(body.get("employee"))
from integrations import messages
    return StellaSandboxEmployee.objects.filter(
from integrations import messages
        Q(email__iexact=employee.get("email") or "-") | Q(custom_id=employee.get("custom_id") or "-")
from integrations import messages
    ).first()
from integrations import messages

from integrations import messages

from integrations import messages
# ---- Stella's Data Return (GET /v2/data) and User Management (GET /v2/employees) ----
from integrations import messages

from integrations import messages
UNAUTHORIZED = {"message": "Unauthorized"}
from integrations import messages
JWT_MAX_AGE = timedelta(hours=1)
from integrations import messages
JWT_MAX_SKEW = timedelta(minutes=5)
from integrations import messages
FEEDBACK_SEQUENCE = "feedback"
from integrations import messages
PAGE_MAX = 1000
from integrations import messages
EMPLOYEES_PAGE_DEFAULT, EMPLOYEES_PAGE_MAX = 100, 500
from integrations import messages
STAR_QUESTION_ID = "q-agent-star-rating"
from integrations import messages
STAR_COMMENTS = {
from integrations import messages
    1: "Nobody answered my question.",
from integrations import messages
    2: "It took far too long.",
from integrations import messages
    3: "Fine, I suppose.",
from integrations import messages
    4: "Helpful, thanks.",
from integrations import messages
    5: "Quick and friendly, problem solved!",
from integrations import messages
}
from integrations import messages

from integrations import messages

from integrations import messages
def _feedback_create(body: dict[str, Any], *, mode: str, company: str, now: datetime) -> StellaSandboxFeedback:
from integrations import messages
    """The interaction Stella records for an accepted request. Call inside the transaction that keeps
from integrations import messages
    the request, so sequence ids commit in order."""
from integrations import messages
    employee, customer = _object(body.get("employee")), _object(body.get("customer"))
from integrations import messages
    known = _employee_named(body)
from integrations import messages
    ext_interaction_id = str(body.get("ext_interaction_id") or "")[:200]
from integrations import messages
    delivered = not body.get("do_not_send")
from integrations import messages
    share = float(settings.SANDBOX_FEEDBACK_SHARE)
from integrations import messages
    delay = timedelta(seconds=float(settings.SANDBOX_FEEDBACK_DELAY_SECONDS))
from integrations import messages
    return StellaSandboxFeedback.objects.create(
from integrations import messages
        sequence_id=_sequence_ids_take(1),
from integrations import messages
        mode=mode,
from integrations import messages
        company=company,
from integrations import messages
        ext_interaction_id=ext_interaction_id,
from integrations import messages
        channel=str(body.get("channel") or ""),
from integrations import messages
        employee_email=str(employee.get("email") or (known.email if known else "")),
from integrations import messages
        employee_custom_id=str(employee.get("custom_id") or (known.custom_id if known else "")),
from integrations import messages
        employee_first_name=known.first_name if known else "",
from integrations import messages
        employee_last_name=known.last_name if known else "",
from integrations import messages
        customer_email=str(customer.get("email") or ""),
from integrations import messages
        customer_name=str(customer.get("name") or ""),
from integrations import messages
        tags=[str(tag) for tag in body.get("tags") or []] if isinstance(body.get("tags"), list) else [],
from integrations import messages
        request_created_at=now,
from integrations import messages
        request_sent_at=now if delivered else None,
from integrations import messages
        request_delivery_status="Delivered" if delivered else "Not sent: do not send flag",
from integrations import messages
        respond_at=now + delay if delivered and _feedback_hash(ext_interaction_id, "answers") < share else None,
from integrations import messages
    )
from integrations import messages

from integrations import messages

from integrations import messages
def _feedback_hash(ext_interaction_id: str, purpose: str) -> float:
from integrations import messages
    """A number in [0, 1) fixed by the conversation: the same conversation always gets the same fate."""
from integrations import messages
    digest = hashlib.sha256(f"{purpose}:{ext_interaction_id}".encode()).digest()
from integrations import messages
    return int.from_bytes(digest[:8]) / 2**64
from integrations import messages

from integrations import messages

from integrations import messages
def _star_rating_for(ext_interaction_id: str) -> int:
from integrations import messages
    """Mostly 4 and 5 stars, some low: 1★ 5%, 2★ 5%, 3★ 10%, 4★ 25%, 5★ 55%."""
from integrations import messages
    draw = _feedback_hash(ext_interaction_id, "stars")
from integrations import messages
    return next(stars for stars, upto in ((1, 0.05), (2, 0.10), (3, 0.20), (4, 0.45), (5, 1.0)) if draw < upto)
from integrations import messages

from integrations import messages

from integrations import messages
def _star_answer(ext_interaction_id: str) -> dict[str, Any]:
from integrations import messages
    stars = _star_rating_for(ext_interaction_id)
from integrations import messages
    option_id = f"opt-star-{stars}"
from integrations import messages
    return {
from integrations import messages
        "agent_star_rating": {
from integrations import messages
            "question_id": STAR_QUESTION_ID,
from integrations import messages
            "question_text": "How would you rate {{employee_first_name}}?",
from integrations import messages
            "comment": STAR_COMMENTS[stars],
from integrations import messages
            "selected_options": {
from integrations import messages
                option_id: {
from integrations import messages
                    "option_id": option_id,
from integrations import messages
                    "option_text": f"{stars} star{'s' * (stars > 1)}",
from integrations import messages
                    "integer_value": stars,
from integrations import messages
                }
from integrations import messages
            },
from integrations import messages
        }
from integrations import messages
    }
from integrations import messages

from integrations import messages

from integrations import messages
def _sequence_ids_take(count: int) -> int:
from integrations import messages
    """The first of `count` new sequence ids. Call inside the transaction that stores them: the counter's
from integrations import messages
    row stays locked until it commits, so records commit in sequence order and no cursor skips one."""
from integrations import messages
    StellaSandboxCounter.objects.get_or_create(name=FEEDBACK_SEQUENCE)
from integrations import messages
    StellaSandboxCounter.objects.filter(name=FEEDBACK_SEQUENCE).update(value=F("value") + count)
from integrations import messages
    return StellaSandboxCounter.objects.get(name=FEEDBACK_SEQUENCE).value - count + 1
from integrations import messages

from integrations import messages

from integrations import messages
def _feedback_answers_arrive(*, now: datetime) -> None:
from integrations import messages
    """The made-up customers whose time has come answer: each answered record gets a new sequence id,
from integrations import messages
    as Stella re-sequences an edited record."""
from integrations import messages
    due = StellaSandboxFeedback.objects.filter(respond_at__lte=now)
from integrations import messages
    if not due.exists():  # the common case, without taking the write lock
from integrations import messages
        return
from integrations import messages
    with transaction.atomic():
from integrations import messages
        answered = list(due.select_for_update().order_by("id"))
from integrations import messages
        if not answered:
from integrations import messages
            return
from integrations import messages
        first = _sequence_ids_take(len(answered))
from integrations import messages
        for sequence_id, feedback in enumerate(answered, start=first):
from integrations import messages
            feedback.sequence_id = sequence_id
from integrations import messages
            feedback.response_received_at = feedback.respond_at
from integrations import messages
            feedback.respond_at = None
from integrations import messages
            feedback.answers = _star_answer(feedback.ext_interaction_id)
from integrations import messages
        StellaSandboxFeedback.objects.bulk_update(
from integrations import messages
            answered, ["sequence_id", "response_received_at", "respond_at", "answers"]
from integrations import messages
        )
from integrations import messages

from integrations import messages

from integrations import messages
def _feedback_json(feedback: StellaSandboxFeedback) -> dict[str, Any]:
from integrations import messages
    """A record as Feedbacks v2 (ResponseBodyDataReturn_FeedbacksV2) shows it."""
from integrations import messages

from integrations import messages
    def iso(moment: datetime | None) -> str | None:
from integrations import messages
        return moment.isoformat() if moment else None
from integrations import messages

from integrations import messages
    return {
from integrations import messages
        "uuid": str(feedback.uuid),
from integrations import messages
        "sequence_id": feedback.sequence_id,
from integrations import messages
        "is_recovery": False,
from integrations import messages
        "branding": "sandbox",
from integrations import messages
        "channel": feedback.channel,
from integrations import messages
        "ext_interaction_id": feedback.ext_interaction_id,
from integrations import messages
        "language": "en",
from integrations import messages
        "survey_id": 1,
from integrations import messages
        "survey_name": "Sandbox survey",
from integrations import messages
        "tags": feedback.tags,
from integrations import messages
        "request_created_at": iso(feedback.request_created_at),
from integrations import messages
        "request_delivery_status": feedback.request_delivery_status,
from integrations import messages
        "request_sent_at": iso(feedback.request_sent_at),
from integrations import messages
        "requested_via": "API",
from integrations import messages
        "response_received_at": iso(feedback.response_received_at),
from integrations import messages
        "employee": {
from integrations import messages
            "custom_id": feedback.employee_custom_id,
from integrations import messages
            "email": feedback.employee_email,
from integrations import messages
            "first_name": feedback.employee_first_name,
from integrations import messages
            "last_name": feedback.employee_last_name,
from integrations import messages
        },
from integrations import messages
        "customer": {"custom_id": "", "email": feedback.customer_email, "full_name": feedback.customer_name},
from integrations import messages
        "custom_properties": {},
from integrations import messages
        "answers": feedback.answers,
from integrations import messages
    }
from integrations import messages

from integrations import messages

from integrations import messages
def _stella_data_mode(request: HttpRequest) -> str:
from integrations import messages
    """The key's mode (test or live) when the key and the JWT are good, else empty. The JWT must be
from integrations import messages
    HS256 with SANDBOX_STELLA_API_SECRET and carry an integer `iat` at most 5 minutes ahead and at most
from integrations import messages
    an hour old. Raw in Authorization as Stella's docs show it; "Bearer <token>" is taken too."""
from integrations import messages
    mode = _key_mode(request.headers.get("x-api-key", ""))
from integrations import messages
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
from integrations import messages
    secret = settings.SANDBOX_STELLA_API_SECRET
from integrations import messages
    if not mode or not token:
from integrations import messages
        return ""
from integrations import messages
    try:
from integrations import messages
        claims = jwt.decode(
from integrations import messages
            token,
from integrations import messages
            secret,
from integrations import messages
            algorithms=["HS256"],
from integrations import messages
            options={"require": ["iat"]},
from integrations import messages
            leeway=JWT_MAX_SKEW,  # PyJWT refuses an iat further ahead than this
from integrations import messages
        )
from integrations import messages
    except jwt.InvalidTokenError:
from integrations import messages
        return ""
from integrations import messages
    if timezone.now().timestamp() - int(claims["iat"]) > JWT_MAX_AGE.total_seconds():
from integrations import messages
        return ""
from integrations import messages
    return mode
from integrations import messages

from integrations import messages

from integrations import messages
def _stella_fault(request: HttpRequest) -> JsonResponse | None:
from integrations import messages
    """Keys that play Stella's bad days: `sandbox-test-ratelimited…` (or live) answers 429 with
from integrations import messages
    Retry-After: 7, `sandbox-test-unavailable…` 503."""
from integrations import messages
    rest = request.headers.get("x-api-key", "").removeprefix("sandbox-test-").removeprefix("sandbox-live-")
from integrations import messages
    if rest.startswith("ratelimited"):
from integrations import messages
        response = JsonResponse({"message": "Too Many Requests"}, status=429)
from integrations import messages
        response["Retry-After"] = "7"
from integrations import messages
        return response
from integrations import messages
    if rest.startswith("unavailable"):
from integrations import messages
        return JsonResponse({"message": "Service Unavailable"}, status=503)
from integrations import messages
    return None
from integrations import messages

from integrations import messages

from integrations import messages
def _query_int(request: HttpRequest, name: str, *, default: int | None) -> int | None:
from integrations import messages
    value = request.GET.get(name, "").strip()
from integrations import messages
    if not value:
from integrations import messages
        return default
from integrations import messages
    return int(value)  # ValueError: the caller answers 400
from integrations import messages

from integrations import messages

from integrations import messages
@require_GET
from integrations import messages
def stella_data(request: HttpRequest) -> JsonResponse:
from integrations import messages
    """GET /v2/data: the key's feedback records after sequence id `after` (exclusive), at most `limit`
from integrations import messages
    (default and most 1000), in sequence order; an empty array past the last. A test key sees the
from integrations import messages
    records made with the company's test key, a live key those made with its live key."""
from integrations import messages
    mode = _stella_data_mode(request)
from integrations import messages
    if not mode:
from integrations import messages
        return JsonResponse(UNAUTHORIZED, status=401)
from integrations import messages
    if fault := _stella_fault(request):
from integrations import messages
        return fault
from integrations import messages
    try:
from integrations import messages
        after = _query_int(request, "after", default=None)
from integrations import messages
        limit = _query_int(request, "limit", default=PAGE_MAX)
from integrations import messages
    except ValueError:
from integrations import messages
        return JsonResponse(
from integrations import messages
            {"message": f"{messages.STELLA_VALIDATION_ERROR.words}: after and limit must be integers"}, status=400
from integrations import messages
        )
from integrations import messages
    _feedback_answers_arrive(now=timezone.now())
from integrations import messages
    company = _key_company(request.headers.get("x-api-key", ""))
from integrations import messages
    records = StellaSandboxFeedback.objects.filter(mode=mode, company=company).order_by("sequence_id")
from integrations import messages
    if after is not None:
from integrations import messages
        records = records.filter(sequence_id__gt=after)
from integrations import messages
    page = records[: max(1, min(limit or PAGE_MAX, PAGE_MAX))]
from integrations import messages
    return JsonResponse([_feedback_json(feedback) for feedback in page], safe=False)
from integrations import messages

from integrations import messages

from integrations import messages
@require_GET
from integrations import messages
def stella_employees(request: HttpRequest) -> JsonResponse:
from integrations import messages
    """GET /v2/employees: {"employees": [...], "meta": {"next_page": url}}, `number_of_employees` a page
from integrations import messages
    (default 100, most 500), the next page after `external_id` (the last employee's id; `after` too);
from integrations import messages
    meta has no next_page on the last page."""
from integrations import messages
    if not _stella_data_mode(request):
from integrations import messages
        return JsonResponse(UNAUTHORIZED, status=401)
from integrations import messages
    if fault := _stella_fault(request):
from integrations import messages
        return fault
from integrations import messages
    try:
from integrations import messages
        after = _query_int(request, "external_id", default=None) or _query_int(request, "after", default=None)
from integrations import messages
        size = _query_int(request, "number_of_employees", default=EMPLOYEES_PAGE_DEFAULT) or EMPLOYEES_PAGE_DEFAULT
from integrations import messages
    except ValueError:
from integrations import messages
        return JsonResponse(
from integrations import messages
            {
from integrations import messages
                "message": f"{messages.STELLA_VALIDATION_ERROR.words}: external_id and number_of_employees must be integers"
from integrations import messages
            },
from integrations import messages
            status=400,
from integrations import messages
        )
from integrations import messages
    size = max(1, min(size, EMPLOYEES_PAGE_MAX))
from integrations import messages
    employees = StellaSandboxEmployee.objects.order_by("id")
from integrations import messages
    if after is not None:
from integrations import messages
        employees = employees.filter(id__gt=after)
from integrations import messages
    rows = list(employees[: size + 1])
from integrations import messages
    meta: dict[str, str] = {}
from integrations import messages
    if len(rows) > size:
from integrations import messages
        rows = rows[:size]
from integrations import messages
        query = urlencode({"external_id": rows[-1].id, "number_of_employees": size})
from integrations import messages
        meta["next_page"] = request.build_absolute_uri(f"{request.path}?{query}")
from integrations import messages
    return JsonResponse({"employees": [_employee_json(employee) for employee in rows], "meta": meta})
from integrations import messages

from integrations import messages

from integrations import messages
def _employee_json(employee: StellaSandboxEmployee) -> dict[str, Any]:
from integrations import messages
    return {
from integrations import messages
        "id": employee.id,
from integrations import messages
        "email": employee.email,
from integrations import messages
        "custom_employee_id": employee.custom_id,
from integrations import messages
        "first_name": employee.first_name,
from integrations import messages
        "last_name": employee.last_name,
from integrations import messages
        "status": "active" if employee.active else "deactivated",
from integrations import messages
        "role": "Agent",
from integrations import messages
        "license_type": "standard",
from integrations import messages
        "channels": ["chat", "email"],
from integrations import messages
    }
from integrations import messages

from integrations import messages

from integrations import messages
# ---- Intercom ----
from integrations import messages

from integrations import messages

from integrations import messages
def _intercom_unauthorized(request: HttpRequest) -> JsonResponse | None:
from integrations import messages
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
from integrations import messages
    if token.startswith("sandbox-"):
from integrations import messages
        return None
from integrations import messages
    error = {"code": "unauthorized", "message": "Access Token Invalid"}
from integrations import messages
    return JsonResponse({"type": "error.list", "errors": [error]}, status=401)
from integrations import messages

from integrations import messages

from integrations import messages
RATE_LIMITED_PREFIX = "ratelimited-"
from integrations import messages

from integrations import messages

from integrations import messages
@csrf_exempt
from integrations import messages
@require_POST
from integrations import messages
def intercom_conversation_reply(request: HttpRequest, conversation_id: str) -> JsonResponse:
from integrations import messages
    """POST /conversations/{id}/reply, for notes: {"message_type": "note", "type": "admin", "admin_id",
from integrations import messages
    "body"}. Keeps each note (IntercomSandboxNote) and answers with the conversation, the note as its part.
from integrations import messages

from integrations import messages
    Conversations whose id starts with `ratelimited-` play Intercom's rate limit: the first note posted to
from integrations import messages
    one is refused with 429 and X-RateLimit-Reset one second ahead (kept with status_code 429); the next
from integrations import messages
    is taken. Any conversation id is taken, stored (IntercomRecord) or not."""
from integrations import messages
    if refused := _intercom_unauthorized(request):
from integrations import messages
        return refused
from integrations import messages
    try:
from integrations import messages
        body = json.loads(request.body)
from integrations import messages
    except ValueError:
from integrations import messages
        body = None
from integrations import messages
    problem = _reply_invalid(body) if isinstance(body, dict) else "Request body is not valid JSON"
from integrations import messages
    if problem or not isinstance(body, dict):
from integrations import messages
        error = {"code": "parameter_invalid", "message": problem}
from integrations import messages
        return JsonResponse({"type": "error.list", "errors": [error]}, status=400)
from integrations import messages
    note = {"conversation_id": conversation_id[:64], "admin_id": str(body["admin_id"])[:64], "body": body["body"]}
from integrations import messages
    if (
from integrations import messages
        conversation_id.startswith(RATE_LIMITED_PREFIX)
from integrations import messages
        and not IntercomSandboxNote.objects.filter(conversation_id=note["conversation_id"], status_code=429).exists()
from integrations import messages
    ):
from integrations import messages
        IntercomSandboxNote.objects.create(**note, status_code=429)
from integrations import messages
        error = {"code": "rate_limit_exceeded", "message": "Rate Limit Exceeded"}
from integrations import messages
        response = JsonResponse({"type": "error.list", "errors": [error]}, status=429)
from integrations import messages
        response["X-RateLimit-Limit"] = "1000"
from integrations import messages
        response["X-RateLimit-Remaining"] = "0"
from integrations import messages
        response["X-RateLimit-Reset"] = str(int(time.time()) + 1)
from integrations import messages
        return response
from integrations import messages
    recorded = IntercomSandboxNote.objects.create(**note, status_code=200)
from integrations import messages
    return JsonResponse(_conversation_with_note(recorded))
from integrations import messages

from integrations import messages

from integrations import messages
def _reply_invalid(body: dict[str, Any]) -> str:
from integrations import messages
    """Intercom's checks on a reply, in its words; empty when it's fine."""
from integrations import messages
    if body.get("message_type") not in ("note", "comment") or body.get("type") != "admin":
from integrations import messages
        return "message_type must be note or comment, and type admin"
from integrations import messages
    if not body.get("admin_id"):
from integrations import messages
        return "admin_id is required"
from integrations import messages
    if not isinstance(body.get("body"), str) or not body["body"].strip():
from integrations import messages
        return "body is required"
from integrations import messages
    return ""
from integrations import messages

from integrations import messages

from integrations import messages
def _conversation_with_note(note: IntercomSandboxNote) -> dict[str, Any]:
from integrations import messages
    stored = IntercomRecord.objects.filter(
from integrations import messages
        kind=IntercomRecord.Kind.CONVERSATION, intercom_id=note.conversation_id
from integrations import messages
    ).first()
from integrations import messages
    conversation = dict(stored.data) if stored else {"type": "conversation", "id": note.conversation_id}
from integrations import messages
    created = int(note.received_at.timestamp())
from integrations import messages
    part = {
from integrations import messages
        "type": "conversation_part",
from integrations import messages
        "id": str(note.id),
from integrations import messages
        "part_type": "note",
from integrations import messages
        "body": note.body,
from integrations import messages
        "created_at": created,
from integrations import messages
        "updated_at": created,
from integrations import messages
        "notified_at": created,
from integrations import messages
        "assigned_to": None,
from integrations import messages
        "author": {"type": "admin", "id": note.admin_id},
from integrations import messages
        "attachments": [],
from integrations import messages
        "external_id": None,
from integrations import messages
        "redacted": False,
from integrations import messages
    }
from integrations import messages
    conversation["updated_at"] = created
from integrations import messages
    conversation["conversation_parts"] = {
from integrations import messages
        "type": "conversation_part.list",
from integrations import messages
        "conversation_parts": [part],
from integrations import messages
        "total_count": 1,
from integrations import messages
    }
from integrations import messages
    return conversation
from integrations import messages

from integrations import messages

from integrations import messages
@require_GET
from integrations import messages
def intercom_record(request: HttpRequest, kind: str, intercom_id: str) -> JsonResponse:
from integrations import messages
    if refused := _intercom_unauthorized(request):
from integrations import messages
        return refused
from integrations import messages
    record = IntercomRecord.objects.filter(kind=kind, intercom_id=intercom_id).first()
from integrations import messages
    if record is None:
from integrations import messages
        error = {"code": "not_found", "message": f"Resource Not Found: {kind} {intercom_id}"}
from integrations import messages
        return JsonResponse({"type": "error.list", "errors": [error]}, status=404)
from integrations import messages
    return JsonResponse(record.data)
from integrations import messages

from integrations import messages

from integrations import messages
# Intercom's OAuth install flow: a consent page, the token endpoint, and GET /me.
from integrations import messages
CODE_SALT, TOKEN_SALT = "sandbox-intercom-code", "sandbox-intercom-token"
from integrations import messages
DEMO_TOKEN_PREFIX = "sandbox-intercom-token-"
from integrations import messages

from integrations import messages

from integrations import messages
def intercom_oauth(request: HttpRequest) -> HttpResponse:
from integrations import messages
    """Intercom's consent page: a person picks the workspace and allows, or denies."""
from integrations import messages
    params = request.GET if request.method == "GET" else request.POST
from integrations import messages
    redirect_uri, state = params.get("redirect_uri", ""), params.get("state", "")
from integrations import messages
    if params.get("client_id") != settings.INTERCOM_CLIENT_ID or not redirect_uri:
from integrations import messages
        return HttpResponse("Unknown app or missing redirect_uri", status=400, content_type="text/plain")
from integrations import messages
    if request.method == "POST":
from integrations import messages
        if "allow" in request.POST:
from integrations import messages
            code = signing.dumps({"workspace": request.POST.get("workspace", "")}, salt=CODE_SALT)
from integrations import messages
            return redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")
from integrations import messages
        return redirect(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}")
from integrations import messages
    return render(request, "sandbox/intercom_oauth.html", {"params": params, "workspace": "demo"})
from integrations import messages

from integrations import messages

from integrations import messages
@csrf_exempt
from integrations import messages
@require_POST
from integrations import messages
def intercom_token(request: HttpRequest) -> JsonResponse:
from integrations import messages
    refused = JsonResponse(
from integrations import messages
        {"type": "error.list", "errors": [{"code": "unauthorized", "message": "Unauthorized Code"}]}, status=401
from integrations import messages
    )
from integrations import messages
    if (
from integrations import messages
        request.POST.get("client_id") != settings.INTERCOM_CLIENT_ID
from integrations import messages
        or request.POST.get("client_secret") != settings.INTERCOM_CLIENT_SECRET
from integrations import messages
    ):
from integrations import messages
        return refused
from integrations import messages
    try:
from integrations import messages
        workspace = signing.loads(request.POST.get("code", ""), salt=CODE_SALT, max_age=600)["workspace"]
from integrations import messages
    except signing.BadSignature:
from integrations import messages
        return refused
from integrations import messages
    token = "sandbox-" + signing.dumps({"workspace": workspace}, salt=TOKEN_SALT)
from integrations import messages
    return JsonResponse({"token_type": "Bearer", "token": token, "access_token": token})
from integrations import messages

from integrations import messages

from integrations import messages
@require_GET
from integrations import messages
def intercom_me(request: HttpRequest) -> JsonResponse:
from integrations import messages
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
from integrations import messages
    try:
from integrations import messages
        workspace = signing.loads(token.removeprefix("sandbox-"), salt=TOKEN_SALT)["workspace"]
from integrations import messages
    except signing.BadSignature:
from integrations import messages
        # The demo accounts' tokens (sandbox/demo.py) name their workspace: sandbox-intercom-token-<workspace>.
from integrations import messages
        workspace = token.removeprefix(DEMO_TOKEN_PREFIX) if token.startswith(DEMO_TOKEN_PREFIX) else ""
from integrations import messages
    if not workspace:
from integrations import messages
        error = {"code": "unauthorized", "message": "Access Token Invalid"}
from integrations import messages
        return JsonResponse({"type": "error.list", "errors": [error]}, status=401)
from integrations import messages
    return JsonResponse(
from integrations import messages
        {"type": "admin", "app": {"type": "app", "id_code": workspace, "name": f"Workspace {workspace}"}}
from integrations import messages
    )
