"""Stella Connect's Data Return API (GET /v2/data) and User Management API (GET /v2/employees).

Both take the API key in `x-api-key` and, in `Authorization`, a JWT signed HS256 with the company's API
secret and carrying `iat`: the raw token, as Stella's docs show it, no "Bearer". Feedback pages by
sequence cursor: send the highest `sequence_id` processed as `after` (exclusive) until a page comes back
empty. An edited record (a customer's answer arriving, say) comes back under a new sequence_id, so the
same `uuid` can appear twice: callers upsert by uuid.

Like client.py, this knows Stella's contract and nothing of accounts: the caller decides what a page
means. Free text in a record (names, comment, channel, delivery status) is made storable (portal/text.py);
identifiers (uuid, ext_interaction_id) are kept as sent, for the caller to judge. A record that breaks the
contract (no uuid, no 64-bit sequence_id) is handed back as unreadable, with why, rather than failing its
page: one bad record must not stop the cursor. Errors are StellaDataError subclasses whose messages are
safe to show: never a key, secret or JWT.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import requests
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from jwt.warnings import InsecureKeyLengthWarning

from integrations.stella.client import NOT_MADE, retry_after_seconds, stella_message, stella_session
from integrations.vocabulary import email_normalised
from portal.redaction import mask_secret
from portal.text import storable

logger = logging.getLogger(__name__)

# Stella issues the API secret: its length is not ours to choose, and PyJWT would warn on every call.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

DEFAULT_RETRY_AFTER = 60.0
# User Management pages hold at most 500 employees; a guard against a next_page that never ends.
EMPLOYEES_PAGE_SIZE = 500
EMPLOYEES_MAX_PAGES = 200
# Sequence ids are paged by as signed 64-bit integers (the cursor is stored as one).
SEQUENCE_ID_RANGE = range(-(2**63), 2**63)
# Feedbacks v2 records nest four levels (answers, a question, its options, an option); far deeper is an attack.
MAX_RECORD_DEPTH = 32


class StellaDataError(Exception):
    """Stella didn't give us the data we asked for; the message says why in plain words, and holds no secret."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class StellaAuthRejected(StellaDataError):
    """401/403: the API key or the API secret is wrong."""


class StellaRateLimited(StellaDataError):
    """429: Stella allows 100 Data Return calls a minute per key; ask again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Stella's rate limit reached: try again in {retry_after:g} s", status_code=429)
        self.retry_after = retry_after


def stella_jwt(api_secret: str, *, now: datetime) -> str:
    """The Authorization header's token: HS256 with the API secret, issued `now`."""
    return jwt.encode({"iat": int(now.timestamp())}, api_secret, algorithm="HS256")


@dataclass(frozen=True)
class StellaEmployeeRecord:
    """One employee as User Management lists it (custom_employee_id in Stella's words)."""

    id: str
    email: str
    custom_id: str
    first_name: str
    last_name: str
    active: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StellaEmployeeRecord:
        return cls(
            id=_text(data.get("id")),
            email=email_normalised(_free_text(data.get("email"))),
            custom_id=_free_text(data.get("custom_employee_id") or data.get("custom_id")).strip(),
            first_name=_free_text(data.get("first_name")).strip(),
            last_name=_free_text(data.get("last_name")).strip(),
            active=_employee_active(data),
        )


@dataclass(frozen=True)
class FeedbackRecord:
    """One interaction as Data Return's Feedbacks v2 sends it, with the agent star rating read out."""

    uuid: str
    sequence_id: int
    ext_interaction_id: str
    channel: str
    is_recovery: bool
    request_created_at: datetime | None
    request_sent_at: datetime | None
    response_received_at: datetime | None
    request_delivery_status: str
    employee_email: str
    employee_custom_id: str
    employee_name: str
    star_rating: int | None
    comment: str
    answers: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedbackRecord:
        """Tolerant of missing optional fields; a record without a uuid or a 64-bit integer sequence_id can't
        be stored or paged past, so it raises StellaDataError. `raw` is the record as sent."""
        if not isinstance(data, dict):
            raise StellaDataError("A feedback record from Stella is not a JSON object")
        uuid = data.get("uuid")
        if not isinstance(uuid, str) or not uuid.strip():
            raise StellaDataError("A feedback record from Stella has no uuid")
        sequence_id = _sequence_id(data)
        if sequence_id is None:
            raise StellaDataError(f"Stella's feedback record {storable(uuid[:64])} has no 64-bit integer sequence_id")
        employee = _object(data.get("employee"))
        answers = _object(data.get("answers"))
        star = _object(answers.get("agent_star_rating"))
        name = " ".join(
            part for part in (_free_text(employee.get(key)).strip() for key in ("first_name", "last_name")) if part
        )
        return cls(
            uuid=uuid.strip(),
            sequence_id=sequence_id,
            ext_interaction_id=_text(data.get("ext_interaction_id")),
            channel=_free_text(data.get("channel")),
            is_recovery=data.get("is_recovery") is True,
            request_created_at=_datetime(data.get("request_created_at")),
            request_sent_at=_datetime(data.get("request_sent_at")),
            response_received_at=_datetime(data.get("response_received_at")),
            request_delivery_status=_free_text(data.get("request_delivery_status")),
            employee_email=email_normalised(_free_text(employee.get("email"))),
            employee_custom_id=_free_text(employee.get("custom_id")).strip(),
            employee_name=name,
            star_rating=_star_rating(star),
            comment=_free_text(star.get("comment")),
            answers=answers,
            raw=data,
        )


@dataclass(frozen=True)
class UnreadableRecord:
    """An item of a feedback page that isn't a record Stella's contract describes: kept as sent (`raw`), with
    why, and its sequence id, uuid and conversation id as far as they can be read."""

    raw: Any
    reason: str
    sequence_id: int | None
    uuid: str
    ext_interaction_id: str

    @classmethod
    def from_json(cls, data: Any, *, reason: str) -> UnreadableRecord:
        fields = data if isinstance(data, dict) else {}
        uuid = fields.get("uuid")
        return cls(
            raw=data,
            reason=reason,
            sequence_id=_sequence_id(fields),
            uuid=uuid.strip() if isinstance(uuid, str) else "",
            ext_interaction_id=_text(fields.get("ext_interaction_id")),
        )


@dataclass(frozen=True)
class FeedbackPage:
    """One page of Data Return: its records in sequence order, the items that can't be read as records, and
    the highest sequence id of them all (the next page's `after`; None for an empty page, the end)."""

    records: list[FeedbackRecord]
    unreadable: list[UnreadableRecord]
    cursor: int | None

    @classmethod
    def from_json(cls, items: list[Any]) -> FeedbackPage:
        """Raises StellaDataError only if the page has items and none has a sequence id: it can't be paged past."""
        records: list[FeedbackRecord] = []
        unreadable: list[UnreadableRecord] = []
        for item in items:
            if _nests_deeper(item, MAX_RECORD_DEPTH):
                reason = f"A feedback record from Stella nests deeper than {MAX_RECORD_DEPTH} levels"
                unreadable.append(UnreadableRecord.from_json(_pruned(item, MAX_RECORD_DEPTH), reason=reason))
                continue
            try:
                records.append(FeedbackRecord.from_json(item))
            except StellaDataError as exc:
                unreadable.append(UnreadableRecord.from_json(item, reason=str(exc)))
        sequence_ids = [record.sequence_id for record in records]
        sequence_ids += [item.sequence_id for item in unreadable if item.sequence_id is not None]
        if items and not sequence_ids:
            raise StellaDataError("Stella's feedback page has no record with a sequence_id: it can't be paged past")
        records.sort(key=lambda record: record.sequence_id)
        return cls(records=records, unreadable=unreadable, cursor=max(sequence_ids, default=None))


class StellaDataClient:
    def __init__(
        self, *, base_url: str, api_key: str, api_secret: str, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        # client.py's per-process session: its connections are reused, and closed with close_connections().
        self.session = session or stella_session()

    def __repr__(self) -> str:
        return f"StellaDataClient(base_url={self.base_url!r}, api_key={mask_secret(self._api_key)!r})"

    def feedback_page(self, *, after: int | None, limit: int = 1000) -> FeedbackPage:
        """The feedback records after sequence id `after` (exclusive; None: from the first), at most `limit`,
        in sequence order. An empty page (no cursor) means there is nothing newer yet."""
        params: dict[str, Any] = {"limit": limit} if after is None else {"after": after, "limit": limit}
        data = self._get("/v2/data", params=params, what="feedback")
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise StellaDataError("Stella's feedback page is not a list of records")
        return FeedbackPage.from_json(data)

    def employees(self) -> list[StellaEmployeeRecord]:
        """Every employee Stella knows, active or not, following User Management's pages (meta.next_page)."""
        params: dict[str, Any] = {"number_of_employees": EMPLOYEES_PAGE_SIZE}
        seen: set[tuple[tuple[str, str], ...]] = set()
        employees: list[StellaEmployeeRecord] = []
        for _ in range(EMPLOYEES_MAX_PAGES):
            items, next_params = _employees_page(self._get("/v2/employees", params=params, what="employee list"))
            employees += [StellaEmployeeRecord.from_json(item) for item in items if isinstance(item, dict)]
            key = tuple(sorted(next_params.items())) if next_params else ()
            if not items or not key or key in seen:
                return employees
            seen.add(key)
            params = {"number_of_employees": EMPLOYEES_PAGE_SIZE, **next_params}
        raise StellaDataError(f"Stella's employee list did not end after {EMPLOYEES_MAX_PAGES} pages")

    def _get(self, path: str, *, params: dict[str, Any], what: str) -> Any:
        token = stella_jwt(self._api_secret, now=timezone.now())
        headers = {"x-api-key": self._api_key, "Authorization": token, "Accept": "application/json"}
        try:
            response = self.session.get(
                self.base_url + path,
                params=params,
                headers=headers,
                timeout=(settings.STELLA_CONNECT_TIMEOUT, settings.STELLA_READ_TIMEOUT),
                # A redirect could carry the key and the JWT to another host.
                allow_redirects=False,
            )
        except NOT_MADE as exc:
            # Not the exception's text: for a bad header it quotes the header, which is the key.
            raise StellaDataError(
                f"Could not make the request ({type(exc).__name__}): check the account's Stella API URL and keys"
            ) from None
        except requests.RequestException as exc:
            raise StellaDataError(f"Stella could not be reached: {type(exc).__name__}") from None
        logger.info("stella.data.call", extra={"path": path, "status": response.status_code})
        _raise_for_status(response, what=what, secrets=(self._api_key, self._api_secret, token))
        try:
            return response.json()
        except (ValueError, RecursionError):  # nested too deep to parse is not JSON we can read either
            raise StellaDataError(f"Stella's {what} is not JSON", status_code=response.status_code) from None


def _raise_for_status(response: requests.Response, *, what: str, secrets: tuple[str, ...]) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403):
        raise StellaAuthRejected(
            f"Stella rejected the API key or API secret ({status}): check the account's Stella keys",
            status_code=status,
        )
    if status == 429:
        retry_after = retry_after_seconds(response)
        raise StellaRateLimited(DEFAULT_RETRY_AFTER if retry_after is None else retry_after)
    if 300 <= status < 400:
        location = _scrubbed(response.headers.get("Location", "nowhere"), secrets)[:200]
        raise StellaDataError(
            f"Stella answered {status}, redirecting to {location}: check the account's Stella API URL",
            status_code=status,
        )
    if status >= 500:
        raise StellaDataError(f"Stella answered {status}", status_code=status)
    message = _scrubbed(stella_message(response), secrets)[:200]
    raise StellaDataError(
        f"Stella answered {status} for the {what}" + (f": {message}" if message else ""), status_code=status
    )


def _scrubbed(text: str, secrets: tuple[str, ...]) -> str:
    """Stella's own words, minus anything of ours it may echo."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, mask_secret(secret))
    return text


def _employees_page(data: Any) -> tuple[list[Any], dict[str, str]]:
    """A page's employees, and the query of the next page (empty on the last). Only the query of
    meta.next_page is used, against our own base URL: the key and JWT go nowhere else."""
    if isinstance(data, list):
        return data, {}
    if not isinstance(data, dict):
        raise StellaDataError("Stella's employee list is not JSON we know")
    items: list[Any] = next((data[key] for key in ("employees", "data") if isinstance(data.get(key), list)), [])
    next_page = _object(data.get("meta")).get("next_page")
    if not isinstance(next_page, str) or not next_page.strip():
        return items, {}
    return items, dict(parse_qsl(urlsplit(next_page.strip()).query))


def _employee_active(data: dict[str, Any]) -> bool:
    """User Management's list filters on a status (active, deactivated, pending review…): only a
    deactivated employee can't be surveyed."""
    if isinstance(data.get("active"), bool):
        return bool(data["active"])
    if isinstance(data.get("deactivated"), bool):
        return not data["deactivated"]
    status = data.get("status")
    if isinstance(status, str):
        return status.strip().lower() not in {"deactivated", "inactive"}
    return True


def _star_rating(answer: dict[str, Any]) -> int | None:
    for option in _object(answer.get("selected_options")).values():
        value = _integer(_object(option).get("integer_value"))
        if value is not None:
            return value
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _free_text(value: Any) -> str:
    return storable(_text(value))


def _sequence_id(data: dict[str, Any]) -> int | None:
    sequence_id = _integer(data.get("sequence_id"))
    return sequence_id if sequence_id is not None and sequence_id in SEQUENCE_ID_RANGE else None


def _nests_deeper(value: Any, levels: int) -> bool:
    """Whether `value` holds lists or objects more than `levels` deep (looked at no deeper than that)."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if children is None:
        return False
    return levels == 0 or any(_nests_deeper(child, levels - 1) for child in children)


def _pruned(value: Any, levels: int) -> Any:
    """`value` with what lies more than `levels` deep replaced by "…": what can be kept of a record nested too deep."""
    if not isinstance(value, dict | list):
        return value
    if levels == 0:
        return "…"
    if isinstance(value, dict):
        return {key: _pruned(child, levels - 1) for key, child in value.items()}
    return [_pruned(child, levels - 1) for child in value]


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _datetime(value: Any) -> datetime | None:
    """ISO 8601 with an offset, as Stella sends it; one without is taken as UTC; a bad one is None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)
