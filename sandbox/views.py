"""Local stand-ins for Stella's Requests, Data Return and User Management APIs and Intercom's REST API.

Stella's validates as Stella does and answers in Stella's words; it keeps what it received, and each
request it accepts becomes a feedback record its Data Return API serves (some answered by a made-up
customer a little later). Keys: `sandbox-test-…` is a test key, `sandbox-live-…` a production key,
anything else is refused. Data Return and User Management also want a JWT signed with
SANDBOX_STELLA_API_SECRET.
Intercom's answers from IntercomRecord rows for any token starting with `sandbox-`, and takes notes.
"""

import hashlib
import json
import time
import warnings
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from jwt.warnings import InsecureKeyLengthWarning

from integrations import messages
from portal.redaction import mask_secret
from sandbox.models import (
    StellaSandboxCounter,
    StellaSandboxEmployee,
    StellaSandboxFeedback,
    StellaSandboxRequest,
)

# The sandbox's API secret is as short as a real Stella one may be: PyJWT would warn on every call.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

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
    mode = _key_mode(api_key)
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if not mode:
        status, answer = 403, {"message": "Forbidden"}
    else:
        problem = _invalid(body)
        status, answer = (400, {"message": problem}) if problem else (200, body)
    with transaction.atomic():
        StellaSandboxRequest.objects.create(
            api_key=mask_secret(api_key), mode=mode, body=body, status_code=status, response=answer
        )
        if status == 200 and isinstance(body, dict):
            _feedback_create(body, mode=mode, company=_key_company(api_key), now=timezone.now())
    time.sleep(max(0.0, answer_at - time.monotonic()))  # SANDBOX_STELLA_LATENCY_MS, its own work included
    return JsonResponse(answer, status=status)


def _invalid(body: object) -> str:
    """Stella's own checks, in Stella's words; empty when the request is fine."""
    if not isinstance(body, dict) or not isinstance(body.get("channel"), str):
        return f"{messages.STELLA_VALIDATION_ERROR.words}: channel is required"
    if unknown := set(body) - BODY_FIELDS:
        return f"{messages.STELLA_VALIDATION_ERROR.words}: unknown field {sorted(unknown)[0]}"
    if body["channel"] not in ENABLED_CHANNELS:
        return messages.STELLA_CHANNEL_NOT_ENABLED.words
    known = _employee_named(body)
    if known is None:
        return messages.STELLA_EMPLOYEE_NOT_FOUND.words
    if not known.active:
        return messages.STELLA_EMPLOYEE_DEACTIVATED.words
    customer = body.get("customer") or {}
    try:
        validate_email(customer.get("email") or "")
    except ValidationError:
        return messages.STELLA_INVALID_CUSTOMER.words
    return ""


def _key_mode(api_key: str) -> str:
    return "test" if api_key.startswith("sandbox-test-") else "live" if api_key.startswith("sandbox-live-") else ""


def _key_company(api_key: str) -> str:
    """The company a key belongs to: its test and production keys differ only in their prefix
    (sandbox-test-key-demo, sandbox-live-key-demo), and Stella's data is the company's own."""
    return api_key.removeprefix("sandbox-test-").removeprefix("sandbox-live-")[:100]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _employee_named(body: dict[str, Any]) -> StellaSandboxEmployee | None:
    employee = _object(body.get("employee"))
    return StellaSandboxEmployee.objects.filter(
        Q(email__iexact=employee.get("email") or "-") | Q(custom_id=employee.get("custom_id") or "-")
    ).first()


# ---- Stella's Data Return (GET /v2/data) and User Management (GET /v2/employees) ----

UNAUTHORIZED = {"message": "Unauthorized"}
JWT_MAX_AGE = timedelta(hours=1)
JWT_MAX_SKEW = timedelta(minutes=5)
FEEDBACK_SEQUENCE = "feedback"
PAGE_MAX = 1000
EMPLOYEES_PAGE_DEFAULT, EMPLOYEES_PAGE_MAX = 100, 500
STAR_QUESTION_ID = "q-agent-star-rating"
STAR_COMMENTS = {
    1: "Nobody answered my question.",
    2: "It took far too long.",
    3: "Fine, I suppose.",
    4: "Helpful, thanks.",
    5: "Quick and friendly, problem solved!",
}


def _feedback_create(body: dict[str, Any], *, mode: str, company: str, now: datetime) -> StellaSandboxFeedback:
    """The interaction Stella records for an accepted request. Call inside the transaction that keeps
    the request, so sequence ids commit in order."""
    employee, customer = _object(body.get("employee")), _object(body.get("customer"))
    known = _employee_named(body)
    ext_interaction_id = str(body.get("ext_interaction_id") or "")[:200]
    delivered = not body.get("do_not_send")
    share = float(settings.SANDBOX_FEEDBACK_SHARE)
    delay = timedelta(seconds=float(settings.SANDBOX_FEEDBACK_DELAY_SECONDS))
    return StellaSandboxFeedback.objects.create(
        sequence_id=_sequence_ids_take(1),
        mode=mode,
        company=company,
        ext_interaction_id=ext_interaction_id,
        channel=str(body.get("channel") or ""),
        employee_email=str(employee.get("email") or (known.email if known else "")),
        employee_custom_id=str(employee.get("custom_id") or (known.custom_id if known else "")),
        employee_first_name=known.first_name if known else "",
        employee_last_name=known.last_name if known else "",
        customer_email=str(customer.get("email") or ""),
        customer_name=str(customer.get("name") or ""),
        tags=[str(tag) for tag in body.get("tags") or []] if isinstance(body.get("tags"), list) else [],
        request_created_at=now,
        request_sent_at=now if delivered else None,
        request_delivery_status="Delivered" if delivered else "Not sent: do not send flag",
        respond_at=now + delay if delivered and _feedback_hash(ext_interaction_id, "answers") < share else None,
    )


def _feedback_hash(ext_interaction_id: str, purpose: str) -> float:
    """A number in [0, 1) fixed by the conversation: the same conversation always gets the same fate."""
    digest = hashlib.sha256(f"{purpose}:{ext_interaction_id}".encode()).digest()
    return int.from_bytes(digest[:8]) / 2**64


def _star_rating_for(ext_interaction_id: str) -> int:
    """Mostly 4 and 5 stars, some low: 1★ 5%, 2★ 5%, 3★ 10%, 4★ 25%, 5★ 55%."""
    draw = _feedback_hash(ext_interaction_id, "stars")
    return next(stars for stars, upto in ((1, 0.05), (2, 0.10), (3, 0.20), (4, 0.45), (5, 1.0)) if draw < upto)


def _star_answer(ext_interaction_id: str) -> dict[str, Any]:
    stars = _star_rating_for(ext_interaction_id)
    option_id = f"opt-star-{stars}"
    return {
        "agent_star_rating": {
            "question_id": STAR_QUESTION_ID,
            "question_text": "How would you rate {{employee_first_name}}?",
            "comment": STAR_COMMENTS[stars],
            "selected_options": {
                option_id: {
                    "option_id": option_id,
                    "option_text": f"{stars} star{'s' * (stars > 1)}",
                    "integer_value": stars,
                }
            },
        }
    }


def _sequence_ids_take(count: int) -> int:
    """The first of `count` new sequence ids. Call inside the transaction that stores them: the counter's
    row stays locked until it commits, so records commit in sequence order and no cursor skips one."""
    StellaSandboxCounter.objects.get_or_create(name=FEEDBACK_SEQUENCE)
    StellaSandboxCounter.objects.filter(name=FEEDBACK_SEQUENCE).update(value=F("value") + count)
    return StellaSandboxCounter.objects.get(name=FEEDBACK_SEQUENCE).value - count + 1


def _feedback_answers_arrive(*, now: datetime) -> None:
    """The made-up customers whose time has come answer: each answered record gets a new sequence id,
    as Stella re-sequences an edited record."""
    due = StellaSandboxFeedback.objects.filter(respond_at__lte=now)
    if not due.exists():  # the common case, without taking the write lock
        return
    with transaction.atomic():
        answered = list(due.select_for_update().order_by("id"))
        if not answered:
            return
        first = _sequence_ids_take(len(answered))
        for sequence_id, feedback in enumerate(answered, start=first):
            feedback.sequence_id = sequence_id
            feedback.response_received_at = feedback.respond_at
            feedback.respond_at = None
            feedback.answers = _star_answer(feedback.ext_interaction_id)
        StellaSandboxFeedback.objects.bulk_update(
            answered, ["sequence_id", "response_received_at", "respond_at", "answers"]
        )


def _feedback_json(feedback: StellaSandboxFeedback) -> dict[str, Any]:
    """A record as Feedbacks v2 (ResponseBodyDataReturn_FeedbacksV2) shows it."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "uuid": str(feedback.uuid),
        "sequence_id": feedback.sequence_id,
        "is_recovery": False,
        "branding": "sandbox",
        "channel": feedback.channel,
        "ext_interaction_id": feedback.ext_interaction_id,
        "language": "en",
        "survey_id": 1,
        "survey_name": "Sandbox survey",
        "tags": feedback.tags,
        "request_created_at": iso(feedback.request_created_at),
        "request_delivery_status": feedback.request_delivery_status,
        "request_sent_at": iso(feedback.request_sent_at),
        "requested_via": "API",
        "response_received_at": iso(feedback.response_received_at),
        "employee": {
            "custom_id": feedback.employee_custom_id,
            "email": feedback.employee_email,
            "first_name": feedback.employee_first_name,
            "last_name": feedback.employee_last_name,
        },
        "customer": {"custom_id": "", "email": feedback.customer_email, "full_name": feedback.customer_name},
        "custom_properties": {},
        "answers": feedback.answers,
    }


def _stella_data_mode(request: HttpRequest) -> str:
    """The key's mode (test or live) when the key and the JWT are good, else empty. The JWT must be
    HS256 with SANDBOX_STELLA_API_SECRET and carry an integer `iat` at most 5 minutes ahead and at most
    an hour old. Raw in Authorization as Stella's docs show it; "Bearer <token>" is taken too."""
    mode = _key_mode(request.headers.get("x-api-key", ""))
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    secret = settings.SANDBOX_STELLA_API_SECRET
    if not mode or not token:
        return ""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["iat"]},
            leeway=JWT_MAX_SKEW,  # PyJWT refuses an iat further ahead than this
        )
    except jwt.InvalidTokenError:
        return ""
    if timezone.now().timestamp() - int(claims["iat"]) > JWT_MAX_AGE.total_seconds():
        return ""
    return mode


def _stella_fault(request: HttpRequest) -> JsonResponse | None:
    """Keys that play Stella's bad days: `sandbox-test-ratelimited…` (or live) answers 429 with
    Retry-After: 7, `sandbox-test-unavailable…` 503."""
    rest = request.headers.get("x-api-key", "").removeprefix("sandbox-test-").removeprefix("sandbox-live-")
    if rest.startswith("ratelimited"):
        response = JsonResponse({"message": "Too Many Requests"}, status=429)
        response["Retry-After"] = "7"
        return response
    if rest.startswith("unavailable"):
        return JsonResponse({"message": "Service Unavailable"}, status=503)
    return None


def _query_int(request: HttpRequest, name: str, *, default: int | None) -> int | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return default
    return int(value)  # ValueError: the caller answers 400


@require_GET
def stella_data(request: HttpRequest) -> JsonResponse:
    """GET /v2/data: the key's feedback records after sequence id `after` (exclusive), at most `limit`
    (default and most 1000), in sequence order; an empty array past the last. A test key sees the
    records made with the company's test key, a live key those made with its live key."""
    mode = _stella_data_mode(request)
    if not mode:
        return JsonResponse(UNAUTHORIZED, status=401)
    if fault := _stella_fault(request):
        return fault
    try:
        after = _query_int(request, "after", default=None)
        limit = _query_int(request, "limit", default=PAGE_MAX)
    except ValueError:
        return JsonResponse(
            {"message": f"{messages.STELLA_VALIDATION_ERROR.words}: after and limit must be integers"}, status=400
        )
    _feedback_answers_arrive(now=timezone.now())
    company = _key_company(request.headers.get("x-api-key", ""))
    records = StellaSandboxFeedback.objects.filter(mode=mode, company=company).order_by("sequence_id")
    if after is not None:
        records = records.filter(sequence_id__gt=after)
    page = records[: max(1, min(limit or PAGE_MAX, PAGE_MAX))]
    return JsonResponse([_feedback_json(feedback) for feedback in page], safe=False)


@require_GET
def stella_employees(request: HttpRequest) -> JsonResponse:
    """GET /v2/employees: {"employees": [...], "meta": {"next_page": url}}, `number_of_employees` a page
    (default 100, most 500), the next page after `external_id` (the last employee's id; `after` too);
    meta has no next_page on the last page."""
    if not _stella_data_mode(request):
        return JsonResponse(UNAUTHORIZED, status=401)
    if fault := _stella_fault(request):
        return fault
    try:
        after = _query_int(request, "external_id", default=None) or _query_int(request, "after", default=None)
        size = _query_int(request, "number_of_employees", default=EMPLOYEES_PAGE_DEFAULT) or EMPLOYEES_PAGE_DEFAULT
    except ValueError:
        return JsonResponse(
            {
                "message": f"{messages.STELLA_VALIDATION_ERROR.words}: external_id and number_of_employees must be integers"
            },
            status=400,
        )
    size = max(1, min(size, EMPLOYEES_PAGE_MAX))
    employees = StellaSandboxEmployee.objects.order_by("id")
    if after is not None:
        employees = employees.filter(id__gt=after)
    rows = list(employees[: size + 1])
    meta: dict[str, str] = {}
    if len(rows) > size:
        rows = rows[:size]
        query = urlencode({"external_id": rows[-1].id, "number_of_employees": size})
        meta["next_page"] = request.build_absolute_uri(f"{request.path}?{query}")
    return JsonResponse({"employees": [_employee_json(employee) for employee in rows], "meta": meta})


def _employee_json(employee: StellaSandboxEmployee) -> dict[str, Any]:
    return {
        "id": employee.id,
        "email": employee.email,
        "custom_employee_id": employee.custom_id,
        "first_name": employee.first_name,
        "last_name": employee.last_name,
        "status": "active" if employee.active else "deactivated",
        "role": "Agent",
        "license_type": "standard",
        "channels": ["chat", "email"],
    }
