"""Intercom's REST API, for what a webhook leaves out. With stella.py, the only code that imports requests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings

from integrations import messages
from integrations.intercom.json_fields import MAX_ID_LENGTH, JsonObject, PayloadError
from integrations.intercom.location import CustomerLocation
from integrations.intercom.payloads import OPERATOR_EMAIL, Conversation
from integrations.vocabulary import IntercomRegion
from portal.paths import NotAPathSegment, path_of

logger = logging.getLogger(__name__)

TIMEOUT = (3.05, 8)


class IntercomError(Exception):
    """Intercom didn't give us what we asked for; the message says why in plain words."""


class IntercomTokenRejected(IntercomError):
    pass


class IntercomNotFound(IntercomError):
    pass


# An account with no token is not an account whose token Intercom rejected: it reads as its own state.
TOKEN_MISSING = messages.INTERCOM_TOKEN_MISSING.words


class IntercomTokenMissing(IntercomNotFound):
    """No token to ask with: nothing is sent to Intercom. Like a missing record, asking again can't help until
    a CSM connects the account, so callers that give up on a missing record give up on this too, and no token
    is flagged as rejected."""

    def __init__(self) -> None:
        super().__init__(TOKEN_MISSING)


class IntercomRateLimited(IntercomError):
    def __init__(self, reset_at: datetime) -> None:
        super().__init__(f"Intercom rate limit reached until {reset_at:%H:%M:%S} UTC")
        self.reset_at = reset_at


class IntercomUnavailable(IntercomError):
    """A network error, a timeout or a 5xx: worth asking again later."""


@dataclass(frozen=True)
class IntercomContact:
    id: str
    role: str
    name: str | None
    email: str | None
    location: CustomerLocation | None = None


def intercom_api_url(region: str = IntercomRegion.US) -> str:
    """The API host of a workspace's region: INTERCOM_API_URL_US, _EU or _AU; INTERCOM_API_URL where that is unset."""
    hosts = {
        IntercomRegion.US: settings.INTERCOM_API_URL_US,
        IntercomRegion.EU: settings.INTERCOM_API_URL_EU,
        IntercomRegion.AU: settings.INTERCOM_API_URL_AU,
    }
    return str(hosts.get(IntercomRegion(region)) or settings.INTERCOM_API_URL).rstrip("/")


def intercom_region_of(value: object) -> IntercomRegion | None:
    """A region as Intercom names it (`workspace_region`, `app.region`: "US", "eu", "Europe"…); None when it says
    none we know, so a region nobody told us about is never guessed."""
    if not isinstance(value, str):
        return None
    name = value.strip().casefold()
    for region in IntercomRegion:
        if name in (region.value, str(region.label).casefold()):
            return region
    return None


@dataclass(frozen=True)
class IntercomMe:
    """Who a token speaks for, as GET /me says: the workspace (app.id_code, the app_id on its webhooks), and its
    region where Intercom says it (app.region)."""

    workspace_id: str
    workspace_name: str
    region: IntercomRegion | None = None


@dataclass(frozen=True)
class IntercomGrant:
    """What Intercom's token exchange gave: the access token, and the workspace's region where it says it."""

    token: str
    region: IntercomRegion | None = None


@dataclass(frozen=True)
class IntercomTeam:
    id: str
    name: str


@dataclass(frozen=True)
class IntercomAdmin:
    id: str
    name: str
    email: str | None

    @property
    def is_bot(self) -> bool:
        return bool(self.email and OPERATOR_EMAIL.match(self.email))


class IntercomClient:
    def __init__(self, token: str, *, base_url: str | None = None, session: requests.Session | None = None) -> None:
        if not token or not token.strip():
            raise IntercomTokenMissing  # never "Bearer " with nothing: Intercom would call that a rejected token
        self.base_url = (base_url or settings.INTERCOM_API_URL).rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Intercom-Version": settings.INTERCOM_API_VERSION,
            }
        )

    def conversation(self, conversation_id: str, *, url: str) -> Conversation:
        data = self._get("conversations", conversation_id, what="conversation")
        try:
            return Conversation.from_rest(data, url=url)
        except PayloadError as exc:
            raise IntercomError(f"Intercom's conversation {conversation_id} is not readable: {exc}") from None

    def contact(self, contact_id: str) -> IntercomContact:
        contact = JsonObject(self._get("contacts", contact_id, what="contact"), "")
        try:
            return IntercomContact(
                id=contact.optional_id("id") or contact_id,
                role=contact.optional("role", str) or "contact",
                name=contact.optional("name", str) or None,
                email=contact.optional("email", str) or None,
                location=CustomerLocation.of_contact(contact),
            )
        except PayloadError as exc:
            raise IntercomError(f"Intercom's contact {contact_id} is not readable: {exc}") from None

    def admin(self, admin_id: str) -> IntercomAdmin:
        admin = JsonObject(self._get("admins", admin_id, what="teammate"), "")
        try:
            return IntercomAdmin(
                id=admin.optional_id("id") or admin_id,
                name=admin.optional("name", str) or "",
                email=admin.optional("email", str) or None,
            )
        except PayloadError as exc:
            raise IntercomError(f"Intercom's teammate {admin_id} is not readable: {exc}") from None

    def teams(self) -> list[IntercomTeam]:
        """The workspace's teams (GET /teams), by name."""
        listing = JsonObject(self._get("teams", what="teams"), "")
        try:
            teams = [
                IntercomTeam(id=team.require_id("id"), name=team.optional("name", str) or "")
                for team in listing.objects("teams")
            ]
        except PayloadError as exc:
            raise IntercomError(f"Intercom's teams are not readable: {exc}") from None
        return sorted(teams, key=lambda team: (team.name.casefold(), team.id))

    def me(self) -> IntercomMe:
        """The workspace this token belongs to: GET /me → app.id_code and app.name."""
        me = JsonObject(self._get("me", what="workspace"), "")
        try:
            app = me.object("app")
            workspace_id = app.require_id_text("id_code", max_length=MAX_ID_LENGTH)
        except PayloadError:
            raise IntercomError("Intercom didn't say which workspace the token belongs to") from None
        try:
            name = app.optional("name", str) or ""
        except PayloadError:
            name = ""
        return IntercomMe(workspace_id=workspace_id, workspace_name=name[:200], region=_region_in(app))

    def workspace_id(self) -> str:
        """The workspace this token belongs to (the app_id on its webhooks)."""
        return self.me().workspace_id

    def conversation_note_add(self, conversation_id: str, *, admin_id: str, body: str) -> None:
        """An internal note on the conversation, written as the teammate `admin_id`: only teammates see it."""
        self._request(
            "POST",
            "conversations",
            conversation_id,
            "reply",
            what="conversation",
            json={"message_type": "note", "type": "admin", "admin_id": admin_id, "body": body},
        )

    def conversation_tag_add(self, conversation_id: str, *, admin_id: str, tag: str) -> None:
        """Tag the conversation with `tag`, made first if the workspace hasn't it (POST /tags creates or finds)."""
        found = self._request("POST", "tags", what="tag", json={"name": tag})
        tag_id = found.get("id")
        if not isinstance(tag_id, str | int) or isinstance(tag_id, bool) or not str(tag_id):
            raise IntercomError("Intercom's tag has no id")
        self._request(
            "POST",
            "conversations",
            conversation_id,
            "tags",
            what="conversation",
            json={"id": str(tag_id), "admin_id": admin_id},
        )

    def conversation_assign(self, conversation_id: str, *, admin_id: str, assignee_id: str, team: bool) -> None:
        """Assign the conversation to a teammate or a team, as the teammate `admin_id`."""
        self._request(
            "POST",
            "conversations",
            conversation_id,
            "parts",
            what="conversation",
            json={
                "message_type": "assignment",
                "type": "team" if team else "admin",
                "admin_id": admin_id,
                "assignee_id": assignee_id,
            },
        )

    def _get(self, *segments: str, what: str) -> dict[str, Any]:
        return self._request("GET", *segments, what=what)

    def _request(self, method: str, *segments: str, what: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        path = _path(segments, what=what)
        try:
            # Never follow a redirect: it would carry the access token wherever it points.
            response = self.session.request(
                method, self.base_url + path, json=json, timeout=TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise IntercomUnavailable(f"Intercom could not be reached: {type(exc).__name__}") from None
        logger.info("intercom.api.call", extra={"method": method, "path": path, "status": response.status_code})
        if response.status_code == 401:
            raise IntercomTokenRejected(messages.INTERCOM_TOKEN_REJECTED.words)
        if response.status_code == 404:
            raise IntercomNotFound(f"Intercom has no such {what}")
        if response.status_code == 429:
            raise IntercomRateLimited(_reset_at(response))
        if response.status_code >= 500:
            raise IntercomUnavailable(f"Intercom answered {response.status_code}")
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "nowhere")[:200]
            raise IntercomError(
                f"Intercom answered {response.status_code}, redirecting to {location}: check INTERCOM_API_URL "
                "(or the account's region's INTERCOM_API_URL_EU / _AU)"
            )
        if response.status_code != 200:
            raise IntercomError(f"Intercom answered {response.status_code} for the {what}")
        try:
            data = response.json()
        except ValueError:
            raise IntercomError(f"Intercom's {what} is not JSON") from None
        if not isinstance(data, dict):
            raise IntercomError(f"Intercom's {what} is not a JSON object")
        return data


def _region_in(app: JsonObject) -> IntercomRegion | None:
    try:
        return intercom_region_of(app.optional("region", str))
    except PayloadError:
        return None


def _path(segments: tuple[str, ...], *, what: str) -> str:
    """The path of `segments`, each quoted whole: an id names only itself, never another resource (`../../me`),
    and adds no query (`x?admin=1#`). One that can't (`.`, `..`, empty) names no record: asking can't help."""
    try:
        return path_of(*segments)
    except NotAPathSegment as exc:
        raise IntercomNotFound(f"{exc.segment[:64]!r} is not an Intercom {what} id") from None


def _reset_at(response: requests.Response) -> datetime:
    """X-RateLimit-Reset is a unix time; without it, wait out Intercom's 10-second window."""
    try:
        return datetime.fromtimestamp(int(response.headers["X-RateLimit-Reset"]), tz=UTC)
    except (KeyError, ValueError):
        return datetime.now(tz=UTC) + timedelta(seconds=10)


def intercom_authorize_url(*, state: str, redirect_uri: str) -> str:
    """Intercom's consent page for our app; it sends the person back to `redirect_uri` with a code and `state`."""
    query = {"client_id": settings.INTERCOM_CLIENT_ID, "state": state, "redirect_uri": redirect_uri}
    return f"{settings.INTERCOM_OAUTH_URL}?{urlencode(query)}"


def intercom_token_for_code(code: str, *, base_url: str | None = None) -> IntercomGrant:
    """The access token for an OAuth code (POST /auth/eagle/token, at `base_url`: the region's host), and the
    workspace's region where the answer says it (`workspace_region`); IntercomError if Intercom refuses."""
    try:
        response = requests.post(
            f"{(base_url or settings.INTERCOM_API_URL).rstrip('/')}/auth/eagle/token",
            data={
                "code": code,
                "client_id": settings.INTERCOM_CLIENT_ID,
                "client_secret": settings.INTERCOM_CLIENT_SECRET,
            },
            headers={"Accept": "application/json"},
            timeout=TIMEOUT,
            allow_redirects=False,  # the client secret goes nowhere else
        )
    except requests.RequestException as exc:
        raise IntercomUnavailable(f"Intercom could not be reached: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise IntercomError(f"Intercom refused the authorisation code ({response.status_code})")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    token = answer.get("access_token") or answer.get("token")
    if not token:
        raise IntercomError("Intercom's answer held no access token")
    return IntercomGrant(token=str(token), region=intercom_region_of(answer.get("workspace_region")))
