"""Intercom webhook notifications as typed objects.

`IntercomNotification.from_json` is the only code that knows the JSON shape. It
reads both payload generations (see ../shared/reference/intercom.md §6):

- older (API 1.x): `user`, `assignee`, `conversation_message`, `tags_added`;
- newer (API 2.x): `source`, `contacts`, `admin_assignee_id`, tags on each part.

Nothing after the parser sees a dict.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from integrations.vocabulary import MALFORMED_AHEAD, AssigneeKind, Channel
from portal.paths import DOT_SEGMENTS, path_of
from portal.text import is_storable, storable

T = TypeVar("T")

OPERATOR_EMAIL = re.compile(r"^operator\+[^@]*@intercom\.io$", re.IGNORECASE)
CUSTOMER_ROLES = {"user", "lead", "contact"}


class PayloadError(ValueError):
    """The body is not an Intercom notification we can read; the message names the field."""


# Where a conversation began, by `source.type` (2.x webhooks) or REST `channel.initial`.
SOURCE_CHANNELS = {"email": Channel.EMAIL, "conversation": Channel.CHAT, "messenger": Channel.CHAT}


@dataclass(frozen=True)
class Customer:
    id: str | None
    role: str  # user, lead, or contact when only the id is known
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Assignee:
    kind: AssigneeKind
    id: str | None = None
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Author:
    type: str  # admin, bot, user, lead, ...
    id: str | None
    name: str | None = None
    email: str | None = None

    @property
    def is_bot(self) -> bool:
        return self.type == "bot" or bool(self.email and OPERATOR_EMAIL.match(self.email))


@dataclass(frozen=True)
class Closure:
    part_id: str
    at: datetime
    closer: Author | None


@dataclass(frozen=True)
class Conversation:
    id: str
    url: str
    first_message_id: str | None
    # None: the payload does not say (older shape); the sender looks it up.
    channel: Channel | None
    channel_source: str
    # Tags this event shows on the first message (a part tag event on that part).
    first_message_tags: tuple[str, ...]
    # The conversation's own tag list: the fallback when no part event says more.
    tags: tuple[str, ...]
    assignee: Assignee
    customer: Customer | None
    closure: Closure | None
    state: str | None

    @property
    def do_not_send_tag_candidates(self) -> tuple[str, ...]:
        """Tags to test against the account's do-not-send list: first-message tags, else the conversation's."""
        return tuple(dict.fromkeys(self.first_message_tags + self.tags))

    @classmethod
    def from_rest(cls, data: dict[str, Any], *, url: str) -> Conversation:
        """A conversation from Intercom's REST API (GET /conversations/{id}): the 2.x webhook item's shape."""
        return _conversation(JsonObject(data, ""), url=url)


@dataclass(frozen=True)
class IntercomNotification:
    id: str | None
    topic: str
    app_id: str
    created_at: datetime
    delivery_attempts: int
    # Every conversation topic names its conversation; `conversation.deleted` names nothing else.
    conversation_id: str | None
    conversation: Conversation | None
    # `contact.deleted` names only its contact: Intercom's *.deleted topics send identifying fields only.
    contact_id: str | None = None

    @classmethod
    def from_json(cls, body: bytes | str, *, app_url: str = "https://app.intercom.com") -> IntercomNotification:
        """Read a notification, or raise PayloadError naming what is wrong. Whatever this accepts
        can be stored and acted on: text is UTF-8, times are plausible, ids fit their columns."""
        data = _load(body)
        if not isinstance(data, dict):
            raise PayloadError("body is not a JSON object")
        envelope = JsonObject(data, "")
        if envelope.optional("type", str) != "notification_event":
            raise PayloadError("type is not notification_event")
        topic = envelope.require_id_text("topic", max_length=MAX_TOPIC_LENGTH)
        app_id = envelope.require_id_text("app_id", max_length=MAX_ID_LENGTH)
        item = envelope.object("data").object("item")
        notification_id = envelope.optional("id", str)
        if notification_id is None and topic != "ping":
            raise PayloadError("id is missing")
        if notification_id is not None:
            notification_id = envelope.require_id_text("id", max_length=MAX_NOTIFICATION_ID_LENGTH)

        conversation_id = None
        conversation = None
        if topic.startswith("conversation"):
            if item.optional("type", str) != "conversation":
                raise PayloadError("data.item.type is not conversation")
            if topic == "conversation.deleted":
                conversation_id = item.require_id("conversation_id")
            else:
                conversation = _conversation(item, url=None, app_id=app_id, app_url=app_url)
                conversation_id = conversation.id
        contact_id = item.require_id("id") if topic == "contact.deleted" else None

        return cls(
            id=notification_id,
            topic=topic,
            app_id=app_id,
            created_at=envelope.require_time("created_at"),
            delivery_attempts=envelope.optional("delivery_attempts", int) or 1,
            conversation_id=conversation_id,
            conversation=conversation,
            contact_id=contact_id,
        )


def _conversation(item: JsonObject, *, url: str | None, app_id: str = "", app_url: str = "") -> Conversation:
    """The conversation `item` describes; its link is `url` if given, else the payload's link to Intercom's
    own app, else one built from `app_url` and the ids."""
    conversation_id = item.require_id("id")
    parts = [_Part(part) for part in item.object_or_empty("conversation_parts").objects("conversation_parts")]
    message = item.optional_object("conversation_message")  # older shape
    source = item.optional_object("source")  # newer shape

    first_message_id = None
    channel: Channel | None = None
    channel_source = ""
    if source is not None:
        first_message_id = source.optional_id("id")
        channel_source = source.optional("type", str) or ""
    elif message is not None:
        first_message_id = message.optional_id("id")
    initial = item.optional_object("channel")
    initial_source = initial.optional("initial", str) if initial is not None else None
    if initial_source:
        channel_source = initial_source
    if channel_source:
        channel = SOURCE_CHANNELS.get(channel_source, Channel.UNSUPPORTED)

    first_message_tags: tuple[str, ...] = ()
    tagged_first_message = next((p for p in parts if first_message_id and p.id == first_message_id), None)
    if tagged_first_message is not None:
        # Older shape: the event's added tags sit on the item; newer: on the part.
        added = item.optional_object("tags_added")
        first_message_tags = tagged_first_message.tags or (_tag_names(added) if added else ())

    closure = None
    close_part = next((p for p in parts if p.part_type == "close"), None)
    if close_part is not None:
        closure = Closure(part_id=close_part.id, at=close_part.created_at, closer=close_part.author)

    if url is None:
        links = item.optional_object("links")
        link = links.optional("conversation_web", str) if links else None
        # Only Intercom's own pages are linked to; otherwise the link is built from the ids.
        if link and is_intercom_url(link, app_url=app_url):
            url = link
        else:
            url = app_url + path_of("a", "apps", app_id, "conversations", conversation_id)

    return Conversation(
        id=conversation_id,
        url=url,
        first_message_id=first_message_id,
        channel=channel,
        channel_source=channel_source,
        first_message_tags=first_message_tags,
        tags=_tag_names(item.optional_object("tags")),
        assignee=_assignee(item, parts),
        customer=_customer(item, source),
        closure=closure,
        state=item.optional("state", str),
    )


def _assignee(item: JsonObject, parts: list[_Part]) -> Assignee:
    """Who the conversation is assigned to at this event, and whether that is a bot."""
    bot_ids = {p.author.id for p in parts if p.author and p.author.is_bot and p.author.id}
    bot_ids |= {p.assigned_to_id for p in parts if p.assigned_to_type == "bot" and p.assigned_to_id}
    closer = next((p.author for p in parts if p.part_type == "close" and p.author), None)

    older = item.optional_object("assignee")
    if older is not None:
        kind = older.optional("type", str) or "nobody_admin"
        assignee_id = older.optional_id("id")
        name, email = older.optional("name", str), older.optional("email", str) or None
    else:
        kind = "admin"
        assignee_id = item.optional_id("admin_assignee_id")
        name = email = None
        if assignee_id is None and item.optional_id("team_assignee_id") is not None:
            kind, assignee_id = "team", item.optional_id("team_assignee_id")
    if assignee_id is None and kind != "team":
        kind = "nobody_admin"

    # The newer shape has only the id; a part by the same teammate may carry the name and email.
    author = next((p.author for p in parts if p.author and assignee_id and p.author.id == assignee_id), None)
    if author is not None:
        name, email = name or author.name, email or author.email

    if kind == "nobody_admin":
        return Assignee(AssigneeKind.NOBODY)
    if kind == "team":
        return Assignee(AssigneeKind.TEAM, assignee_id, name)
    is_bot = (
        kind == "bot"
        or assignee_id in bot_ids
        or bool(email and OPERATOR_EMAIL.match(email))
        or bool(closer and closer.is_bot)
    )
    return Assignee(AssigneeKind.BOT if is_bot else AssigneeKind.ADMIN, assignee_id, name, email)


def _customer(item: JsonObject, source: JsonObject | None) -> Customer | None:
    user = item.optional_object("user")  # older shape
    if user is not None:
        return Customer(
            id=user.optional_id("id"),
            role=user.optional("type", str) or "user",
            name=user.optional("name", str) or None,
            email=user.optional("email", str) or None,
        )
    contacts = item.object_or_empty("contacts").objects("contacts")
    contact_id = contacts[0].optional_id("id") if contacts else None
    author = source.optional_object("author") if source is not None else None
    if author is not None and author.optional("type", str) in CUSTOMER_ROLES:
        author_id = author.optional_id("id")
        if contact_id is None or author_id == contact_id:
            return Customer(
                id=author_id,
                role=author.require("type", str),
                name=author.optional("name", str) or None,
                email=author.optional("email", str) or None,
            )
    if contact_id is None:
        return None
    return Customer(id=contact_id, role="contact")


def _tag_names(tag_list: JsonObject | None) -> tuple[str, ...]:
    if tag_list is None:
        return ()
    return tuple(tag.require("name", str) for tag in tag_list.objects("tags"))


class _Part:
    def __init__(self, part: JsonObject) -> None:
        self.id = part.require_id("id")
        self.part_type = part.optional("part_type", str)
        self.created_at = part.require_time("created_at")
        author = part.optional_object("author")
        self.author = (
            Author(
                type=author.optional("type", str) or "",
                id=author.optional_id("id"),
                name=author.optional("name", str),
                email=author.optional("email", str) or None,
            )
            if author is not None
            else None
        )
        assigned_to = part.optional_object("assigned_to")
        self.assigned_to_type = assigned_to.optional("type", str) if assigned_to else None
        self.assigned_to_id = assigned_to.optional_id("id") if assigned_to else None
        # Newer shape only: tags on the part itself, a list of tag objects.
        self.tags = tuple(tag.require("name", str) for tag in part.objects("tags"))


class JsonObject:
    """A JSON object from Intercom and its dotted path, so every error names the field. Every string read
    through it is storable: free text (a name, a tag, a source type, a link) has NUL and half a surrogate
    pair replaced by U+FFFD, and an id that holds one is refused, since a changed id names something else."""

    def __init__(self, data: dict[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _typed(self, key: str, kind: type[T]) -> T | None:
        """The value as it arrived, checked for its kind: only ids read strings this way, through _checked_id."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise PayloadError(f"{self._at(key)} is not {_KIND_NAMES.get(kind, kind.__name__)}")
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        """The value of `kind`, or None; a string comes back storable (NUL and half surrogate pairs as U+FFFD)."""
        value = self._typed(key, kind)
        if isinstance(value, str):
            return cast(T, storable(value))
        return value

    def require(self, key: str, kind: type[T]) -> T:
        value = self.optional(key, kind)
        if value is None:
            raise PayloadError(f"{self._at(key)} is missing")
        return value

    def optional_id(self, key: str) -> str | None:
        """Intercom ids arrive as strings or numbers; 0 and "" mean none (unassigned)."""
        value = self.data.get(key)
        if value in (None, 0, "", "0"):
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PayloadError(f"{self._at(key)} is not an id")
        return _checked_id(str(value), self._at(key), max_length=MAX_ID_LENGTH)

    def require_id_text(self, key: str, *, max_length: int) -> str:
        """A string that names something (a topic, a workspace, a notification): non-empty and storable."""
        value = self._typed(key, str)
        if value is None:
            raise PayloadError(f"{self._at(key)} is missing")
        if value == "":
            raise PayloadError(f"{self._at(key)} is empty")
        return _checked_id(value, self._at(key), max_length=max_length)

    def require_id(self, key: str) -> str:
        value = self.optional_id(key)
        if value is None:
            raise PayloadError(f"{self._at(key)} is missing")
        return value

    def require_time(self, key: str) -> datetime:
        seconds = self.require(key, int)
        latest = time.time() + MAX_CLOCK_AHEAD.total_seconds()
        if not EARLIEST_TIME.timestamp() <= seconds <= latest:
            raise PayloadError(f"{self._at(key)} is not a time between 2011 and tomorrow")
        return datetime.fromtimestamp(seconds, tz=UTC)

    def optional_object(self, key: str) -> JsonObject | None:
        value = self.optional(key, dict)
        return JsonObject(value, self._at(key)) if value is not None else None

    def object(self, key: str) -> JsonObject:
        return JsonObject(self.require(key, dict), self._at(key))

    def object_or_empty(self, key: str) -> JsonObject:
        return self.optional_object(key) or JsonObject({}, self._at(key))

    def objects(self, key: str) -> list[JsonObject]:
        values = self.optional(key, list) or []
        objects = []
        for index, value in enumerate(values):
            if not isinstance(value, dict):
                raise PayloadError(f"{self._at(key)}[{index}] is not an object")
            objects.append(JsonObject(value, f"{self._at(key)}[{index}]"))
        return objects


_KIND_NAMES = {str: "a string", int: "a number", dict: "an object", list: "a list"}


# Intercom began in 2011; a notification from later than tomorrow is a forgery or a broken clock.
EARLIEST_TIME = datetime(2011, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = MALFORMED_AHEAD  # integrations/vocabulary.py says why two limits
# Ids are stored in columns of these sizes.
MAX_ID_LENGTH = 64
MAX_NOTIFICATION_ID_LENGTH = 100
MAX_TOPIC_LENGTH = 100
MAX_URL_LENGTH = 300
# Intercom's payloads nest a handful of levels; far deeper is an attack on the parser.
MAX_DEPTH = 64
INTERCOM_HOSTS = {"app.intercom.com", "app.intercom.io", "app.eu.intercom.com", "app.au.intercom.com"}
_URL_CHARACTERS = re.compile(r"[!-\[\]-~]+")  # visible ASCII but the backslash
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _load(body: bytes | str) -> Any:
    """JSON from UTF-8 text without a byte order mark, nested at most MAX_DEPTH deep."""
    if isinstance(body, bytes):
        if body.startswith(b"\xef\xbb\xbf"):
            raise PayloadError("body starts with a byte order mark: send UTF-8 JSON without one")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("body is not UTF-8") from None
    else:
        text = body
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"body is not JSON: {str(exc)[:200]}") from None


def _checked_id(value: str, path: str, *, max_length: int) -> str:
    if len(value) > max_length:
        raise PayloadError(f"{path} is longer than {max_length} characters")
    if not is_storable(value):
        raise PayloadError(f"{path} holds a NUL or half a surrogate pair")
    if value in DOT_SEGMENTS:
        raise PayloadError(f"{path} is {value!r}, which names no record")  # it would walk a URL path
    return value


def is_intercom_url(url: str, *, app_url: str) -> bool:
    """An https link to Intercom's own app (any region's, or the configured one), written as a URL is:
    visible ASCII, no space, control character or U+FFFD, no backslash (a browser reads it as `/`, so
    `https://evil.example\\@app.intercom.com` goes to evil.example) and no user name."""
    if len(url) > MAX_URL_LENGTH or not _URL_CHARACTERS.fullmatch(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [ in the host
        return False
    known_host = parts.hostname in INTERCOM_HOSTS | {urlsplit(app_url).hostname}
    return parts.scheme == "https" and known_host and parts.username is None
