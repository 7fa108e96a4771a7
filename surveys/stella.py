"""Stella Connect's Requests API. With intercom/client.py, the only code that imports requests.

Every call has its ApiRequest row, saved (by the caller, with whatever else it writes then)
before the call goes out and completed after, so a crash mid-call leaves a row that says a
call may have reached Stella.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone
from urllib3.exceptions import MaxRetryError, NewConnectionError

from portal.redaction import mask_secret
from surveys.models import ApiRequest

RESPONSE_CAP = 4000
# What create_request fills in.
RESULT_FIELDS = ["status_code", "response_body", "duration_ms", "outcome", "error_message", "finished_at"]


@dataclass(frozen=True)
class StellaResult:
    outcome: str  # an ApiRequest.Outcome
    status_code: int | None
    error_message: str
    retry_after: float | None = None  # seconds Stella asked us to wait


@functools.cache
def _session() -> requests.Session:
    # One per process (each cluster worker is one): connections to Stella, and their TLS
    # handshakes, are reused from one send to the next.
    return requests.Session()


def close_connections() -> None:
    """Close the connections kept open to Stella (tests: so no server thread outlives its test)."""
    if _session.cache_info().currsize:
        _session().close()
        _session.cache_clear()


class StellaClient:
    def __init__(self, *, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or _session()

    @property
    def requests_url(self) -> str:
        return f"{self.base_url}/v1/requests"

    def create_request(self, api_request: ApiRequest, *, api_key: str) -> StellaResult:
        """POST the body on the (saved) `api_request` and fill the row in with what happened; the caller
        saves it, in the same transaction as the outcome, so the database is never held during a call."""
        headers = {"x-api-key": api_key, "Accept": "application/json", "Content-Type": "application/json"}
        started = time.monotonic()
        try:
            response = self.session.post(
                self.requests_url,
                data=json.dumps(api_request.request_body),
                headers=headers,
                timeout=(settings.STELLA_CONNECT_TIMEOUT, settings.STELLA_READ_TIMEOUT),
            )
        except requests.RequestException as exc:
            result = _result_for_exception(exc)
            response_text = ""
        else:
            result = _result_for_response(response)
            response_text = response.text[:RESPONSE_CAP]
        api_request.status_code = result.status_code
        api_request.response_body = response_text
        api_request.duration_ms = int((time.monotonic() - started) * 1000)
        api_request.outcome = result.outcome
        api_request.error_message = result.error_message[:500]
        api_request.finished_at = timezone.now()
        return result

    def new_api_request(self, *, survey_request: Any, mode: str, api_key: str, body: dict[str, Any]) -> ApiRequest:
        """The row for a call about to be made (unsaved): it must be committed before the call is."""
        return ApiRequest(
            survey_request=survey_request,
            account_id=survey_request.account_id,
            mode=mode,
            url=self.requests_url,
            request_headers={"x-api-key": mask_secret(api_key), "Content-Type": "application/json"},
            request_body=body,
            outcome=ApiRequest.Outcome.PENDING,
        )


def _result_for_response(response: requests.Response) -> StellaResult:
    status = response.status_code
    if 200 <= status < 300:
        return StellaResult(ApiRequest.Outcome.SENT, status, "")
    if status == 400:
        return StellaResult(ApiRequest.Outcome.INVALID, status, _stella_message(response) or "Validation error")
    if status in (401, 403):
        return StellaResult(ApiRequest.Outcome.INVALID, status, "API key rejected")
    if status == 429 or status >= 500:
        return StellaResult(ApiRequest.Outcome.RETRY, status, f"Stella answered {status}", _retry_after(response))
    # Another 4xx (a wrong URL, say) won't get better by itself: a person has to look.
    return StellaResult(ApiRequest.Outcome.FAILED, status, f"Stella answered {status}")


# Raised while preparing the request, before a byte is sent: a setting to fix, not a retry.
NOT_MADE = (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema)  # fmt: skip


def _result_for_exception(exc: requests.RequestException) -> StellaResult:
    if isinstance(exc, NOT_MADE):
        # Not the exception's text: for a bad header it quotes the header, which is the API key.
        message = f"Could not make the request ({type(exc).__name__}): check the account's Stella API URL and keys"
        return StellaResult(ApiRequest.Outcome.FAILED, None, message)
    if _never_reached_stella(exc):
        return StellaResult(ApiRequest.Outcome.RETRY, None, f"Could not connect to Stella ({type(exc).__name__})")
    if isinstance(exc, requests.ReadTimeout):
        message = f"No answer within {settings.STELLA_READ_TIMEOUT:g} s: Stella may have accepted it"
    else:
        message = f"The connection broke after the request went out ({type(exc).__name__}): Stella may have accepted it"
    return StellaResult(ApiRequest.Outcome.AMBIGUOUS, None, message)


def _never_reached_stella(exc: requests.RequestException) -> bool:
    """Only a connection that never opened is safe to retry: Stella has no idempotency key."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, NewConnectionError)
    return False


def _stella_message(response: requests.Response) -> str:
    """Stella's error bodies are undocumented: take a message field if there is one, else the text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(data, dict):
        for key in ("message", "error", "errors", "detail"):
            if data.get(key):
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value)[:500]
    return json.dumps(data)[:500]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def request_body(
    survey_request: Any, *, employee_custom_id: str = "", brand: str = "", language: str = ""
) -> dict[str, Any]:
    """The body of POST /v1/requests (FeedbackRequestModel in Stella's Requests API schema)."""
    customer = {
        key: value
        for key, value in (("name", survey_request.customer_name), ("email", survey_request.customer_email))
        if value
    }
    employee = {"custom_id": employee_custom_id} if employee_custom_id else {"email": survey_request.teammate_email}
    body: dict[str, Any] = {
        "channel": survey_request.channel,
        "employee": employee,
        "customer": customer,
        "ext_interaction_id": survey_request.conversation_id,
        "external_url": survey_request.conversation_url,
        "tags": [str(tag)[:2000] for tag in survey_request.tags][:20],
    }
    if survey_request.do_not_send:
        body["do_not_send"] = True
    if brand:
        body["brand"] = brand
    if language:
        body["language"] = language
    return body
