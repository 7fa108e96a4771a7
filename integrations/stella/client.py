"""Stella Connect's Requests API. With intercom/client.py, the only code that imports requests.

The client knows Stella's contract (the body, the key header, what each answer means) and
nothing of accounts or survey requests: the caller logs each call, before it goes out and
after, so a crash mid-call leaves a row that says a call may have reached Stella.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings
from django.db import models
from django.utils import timezone
from urllib3.exceptions import MaxRetryError, NewConnectionError

from integrations import messages
from integrations.metrics import stella_calls_observed
from integrations.vocabulary import Channel
from portal.redaction import mask_secret

RESPONSE_CAP = 4000


class CallOutcome(models.TextChoices):
    """What came of one call to Stella."""

    PENDING = "pending", "Sending"
    SENT = "sent", "Sent"
    INVALID = "invalid", "Invalid"
    RETRY = "retry", "Failed, will retry"
    FAILED = "failed", "Failed"
    AMBIGUOUS = "ambiguous", "Ambiguous: may have reached Stella"


# Stella emails an account's monitoring address when more than this share of its requests fail within an hour
# (docs/reference): the portal's own alert (surveys/reporting/alerts.py) starts at the same share, and says so.
ERROR_ALERT_THRESHOLD = 0.05


@dataclass(frozen=True)
class FeedbackRequest:
    """One survey request as Stella's Requests API takes it (FeedbackRequestModel in its schema)."""

    channel: Channel | str
    conversation_id: str
    conversation_url: str
    customer_name: str
    customer_email: str
    employee_email: str
    employee_custom_id: str = ""  # when set, Stella is told this instead of the email
    tags: tuple[str, ...] = ()
    do_not_send: bool = False
    brand: str = ""
    language: str = ""

    def as_json(self) -> dict[str, Any]:
        """The body of POST /v1/requests."""
        customer = {
            key: value for key, value in (("name", self.customer_name), ("email", self.customer_email)) if value
        }
        employee = {"custom_id": self.employee_custom_id} if self.employee_custom_id else {"email": self.employee_email}
        body: dict[str, Any] = {
            "channel": str(self.channel),
            "employee": employee,
            "customer": customer,
            "ext_interaction_id": self.conversation_id,
            "external_url": self.conversation_url,
            "tags": [str(tag)[:2000] for tag in self.tags][:20],
        }
        if self.do_not_send:
            body["do_not_send"] = True
        if self.brand:
            body["brand"] = self.brand
        if self.language:
            body["language"] = self.language
        return body


@dataclass(frozen=True)
class StellaResult:
    """What happened to one call, ready to be logged."""

    outcome: CallOutcome
    status_code: int | None
    error_message: str
    retry_after: float | None = None  # seconds Stella asked us to wait
    response_text: str = ""
    duration_ms: int | None = None
    finished_at: datetime | None = None


@functools.cache
def stella_session() -> requests.Session:
    # One per process (each cluster worker is one): connections to Stella, and their TLS
    # handshakes, are reused from one send to the next.
    return requests.Session()


def close_connections() -> None:
    """Close the connections kept open to Stella (tests: so no server thread outlives its test)."""
    if stella_session.cache_info().currsize:
        stella_session().close()
        stella_session.cache_clear()


class StellaClient:
    def __init__(self, *, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or stella_session()

    @property
    def requests_url(self) -> str:
        return f"{self.base_url}/v1/requests"

    def logged_headers(self, api_key: str) -> dict[str, str]:
        """The headers of a call as its log shows them: the key masked."""
        return {"x-api-key": mask_secret(api_key), "Content-Type": "application/json"}

    @stella_calls_observed
    def create_request(self, body: dict[str, Any], *, api_key: str) -> StellaResult:
        """POST one feedback request and say what came of it. Never raises for what Stella or the
        network did: every answer, or the lack of one, is an outcome."""
        headers = {"x-api-key": api_key, "Accept": "application/json", "Content-Type": "application/json"}
        started = time.monotonic()
        try:
            response = self.session.post(
                self.requests_url,
                data=json.dumps(body),
                headers=headers,
                timeout=(settings.STELLA_CONNECT_TIMEOUT, settings.STELLA_READ_TIMEOUT),
                # A redirect would turn the POST into a GET, or carry the key to another host.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            result = _result_for_exception(exc)
            response_text = ""
        else:
            result = _result_for_response(response)
            response_text = response.text[:RESPONSE_CAP]
        return replace(
            result,
            error_message=result.error_message[:500],
            response_text=response_text,
            duration_ms=int((time.monotonic() - started) * 1000),
            finished_at=timezone.now(),
        )


def _result_for_response(response: requests.Response) -> StellaResult:
    status = response.status_code
    if 200 <= status < 300:
        return StellaResult(CallOutcome.SENT, status, "")
    if 300 <= status < 400:
        location = response.headers.get("Location", "nowhere")[:200]
        message = f"Stella answered {status}, redirecting to {location}: check the account's Stella API URL"
        return StellaResult(CallOutcome.FAILED, status, message)
    if status == 400:
        return StellaResult(
            CallOutcome.INVALID, status, stella_message(response) or messages.STELLA_VALIDATION_ERROR.words
        )
    if status in (401, 403):
        return StellaResult(CallOutcome.INVALID, status, messages.STELLA_KEY_REJECTED.words)
    if status == 429 or status >= 500:
        return StellaResult(CallOutcome.RETRY, status, f"Stella answered {status}", retry_after_seconds(response))
    # Another 4xx (a wrong URL, say) won't get better by itself: a person has to look.
    return StellaResult(CallOutcome.FAILED, status, f"Stella answered {status}")


# Raised while preparing the request, before a byte is sent: a setting to fix, not a retry.
NOT_MADE = (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema)  # fmt: skip


def _result_for_exception(exc: requests.RequestException) -> StellaResult:
    if isinstance(exc, NOT_MADE):
        # Not the exception's text: for a bad header it quotes the header, which is the API key.
        message = f"Could not make the request ({type(exc).__name__}): check the account's Stella API URL and keys"
        return StellaResult(CallOutcome.FAILED, None, message)
    if _never_reached_stella(exc):
        return StellaResult(CallOutcome.RETRY, None, f"Could not connect to Stella ({type(exc).__name__})")
    if isinstance(exc, requests.ReadTimeout):
        message = f"No answer within {settings.STELLA_READ_TIMEOUT:g} s: Stella may have accepted it"
    else:
        message = f"The connection broke after the request went out ({type(exc).__name__}): Stella may have accepted it"
    return StellaResult(CallOutcome.AMBIGUOUS, None, message)


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


def stella_message(response: requests.Response) -> str:
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


def retry_after_seconds(response: requests.Response) -> float | None:
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
