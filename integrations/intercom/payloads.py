"""Intercom webhook notifications as typed objects.

`IntercomNotification.from_json` is the only code that knows the JSON shape. It
reads both payload generations (see ../shared/reference/intercom.md §6):

- older (API 1.x): `user`, `assignee`, `conversation_message`, `tags_added`;
- newer (API 2.x): `source`, `contacts`, `admin_assignee_id`, tags on each part.

Nothing after the parser sees a dict.

What it read is kept beside the stored body (`stored` / `from_stored`), so acting on a webhook doesn't read
its body again: the request parses it once. The objects are msgspec Structs, which that round trip decodes typed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from integrations.intercom.json_fields import (
    MAX_ID_LENGTH,
    MAX_NOTIFICATION_ID_LENGTH,
    MAX_TOPIC_LENGTH,
    JsonObject,
    PayloadError,
    is_intercom_url,
    is_plausible_time,
    load_bounded,
)
from integrations.vocabulary import AssigneeKind, Channel
from portal.paths import path_of

OPERATOR_EMAIL = re.compile(r"^operator\+[^@]*@intercom\.io$", re.IGNORECASE)
CUSTOMER_ROLES = {"user", "lead", "contact"}


# Where a conversation began, by `source.type` (2.x webhooks) or REST `channel.initial`.
SOURCE_CHANNELS = {"email": Channel.EMAIL, "conversation": Channel.CHAT, "messenger": Channel.CHAT}


class Customer(msgspec.Struct, frozen=True):
    id: str | None
    role: str  # user, lead, or contact when only the id is known
    name: str | None = None
    email: str | None = None


class Assignee(msgspec.Struct, frozen=True):
    kind: AssigneeKind
    id: str | None = None
    name: str | None = None
    email: str | None = None


class Author(msgspec.Struct, frozen=True):
    type: str  # admin, bot, user, lead, ...
    id: str | None
    name: str | None = None
    email: str | None = None

    @property
    def is_bot(self) -> bool:
        return self.type == "bot" or bool(self.email and OPERATOR_EMAIL.match(self.email))


class Closure(msgspec.Struct, frozen=True):
    part_id: str
    at: datetime
    closer: Author | None


class Conversation(msgspec.Struct, frozen=True):
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
    # The team it is assigned to (2.x `team_assignee_id`, or a 1.x team assignee); "": none, or not said.
    team_id: str = ""
    # When a teammate last replied (2.x `statistics.last_admin_reply_at`); None: never, or not said.
    last_admin_reply_at: datetime | None = None
    # Only from the REST API, whose parts are the conversation's (a webhook's are the event's): how many comments
    # human teammates wrote, and the last of them to write one (id, name, email). None: not known here.
    teammate_replies: int | None = None
    last_replier: Author | None = None

    @property
    def do_not_send_tag_candidates(self) -> tuple[str, ...]:
        """Tags to test against the account's do-not-send list: first-message tags, else the conversation's."""
        return tuple(dict.fromkeys(self.first_message_tags + self.tags))

    @classmethod
    def from_rest(cls, data: dict[str, Any], *, url: str) -> Conversation:
        """A conversation from Intercom's REST API (GET /conversations/{id}): the 2.x webhook item's shape, with
        its parts (up to Intercom's 500 most recent), so the teammates' comments are counted."""
        item = JsonObject(data, "")
        conversation = _conversation(item, url=url)
        comments = [part.author for part in _parts(item) if part.is_teammate_comment]
        return msgspec.structs.replace(
            conversation, teammate_replies=len(comments), last_replier=comments[-1] if comments else None
        )


class IntercomNotification(msgspec.Struct, frozen=True):
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
        data = load_bounded(body)
        if not isinstance(data, dict):
            raise PayloadError("body is not a JSON object")
        envelope = JsonObject(data, "")
        if envelope.optional("type", str) != "notification_event":
            raise PayloadError("type is not notification_event")
        topic = envelope.require_id_text("topic", max_length=MAX_TOPIC_LENGTH)
        app_id = envelope.require_id_text("app_id", max_length=MAX_ID_LENGTH)
        item = envelope.object("data").object("item")
        notification_id = _notification_id(envelope, topic)
        conversation_id, conversation = _conversation_named(topic, item, app_id=app_id, app_url=app_url)
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

    def stored(self) -> str:
        """What was read, as text to keep beside the body: `from_stored` gives it back without parsing the body."""
        return _STORED_ENCODER.encode(_Stored(STORED_VERSION, self)).decode()

    @classmethod
    def from_stored(cls, text: str) -> IntercomNotification | None:
        """What `stored` kept; None when there is none, or it was kept by a parser other than this one
        (the caller then reads the body)."""
        if not text:
            return None
        try:
            kept = _STORED_DECODER.decode(text)
        except msgspec.MsgspecError:
            return None
        return kept.notification if kept.version == STORED_VERSION else None


class _Stored(msgspec.Struct, frozen=True):
    version: int
    notification: IntercomNotification


# Raise it whenever the parser comes to read a body differently: notifications kept by an earlier one are then
# read from their bodies again (a replay after a fix acts on what this parser reads).
STORED_VERSION = 2
_STORED_ENCODER = msgspec.json.Encoder()
_STORED_DECODER = msgspec.json.Decoder(_Stored)


def _notification_id(envelope: JsonObject, topic: str) -> str | None:
    """Every notification but a ping has an id."""
    if envelope.optional("id", str) is None:
        if topic != "ping":
            raise PayloadError("id is missing")
        return None
    return envelope.require_id_text("id", max_length=MAX_NOTIFICATION_ID_LENGTH)


def _conversation_named(
    topic: str, item: JsonObject, *, app_id: str, app_url: str
) -> tuple[str | None, Conversation | None]:
    """A conversation topic's conversation id, and the conversation but for `conversation.deleted`."""
    if not topic.startswith("conversation"):
        return None, None
    if item.optional("type", str) != "conversation":
        raise PayloadError("data.item.type is not conversation")
    if topic == "conversation.deleted":
        return item.require_id("conversation_id"), None
    conversation = _conversation(item, url=None, app_id=app_id, app_url=app_url)
    return conversation.id, conversation


def _conversation(item: JsonObject, *, url: str | None, app_id: str = "", app_url: str = "") -> Conversation:
    """The conversation `item` describes; its link is `url` if given, else the payload's link to Intercom's
    own app, else one built from `app_url` and the ids."""
    conversation_id = item.require_id("id")
    parts = _parts(item)
    message = item.optional_object("conversation_message")  # older shape
    source = item.optional_object("source")  # newer shape
    first = source if source is not None else message
    first_message_id = first.optional_id("id") if first is not None else None
    channel_source = _channel_source(item, source)
    # Read in this order so that, of several faults, the one named is the same as ever.
    first_message_tags = _first_message_tags(item, parts, first_message_id)
    return Conversation(
        id=conversation_id,
        url=url or _link(item, app_id=app_id, conversation_id=conversation_id, app_url=app_url),
        first_message_id=first_message_id,
        channel=SOURCE_CHANNELS.get(channel_source, Channel.UNSUPPORTED) if channel_source else None,
        channel_source=channel_source,
        first_message_tags=first_message_tags,
        tags=_tag_names(item.optional_object("tags")),
        assignee=_assignee(item, parts),
        customer=_customer(item, source),
        closure=_closure(parts),
        state=item.optional("state", str),
        team_id=_team_id(item) or "",
        last_admin_reply_at=_statistics_time(item, "last_admin_reply_at"),
    )


def _parts(item: JsonObject) -> list[_Part]:
    return [_Part(part) for part in item.object_or_empty("conversation_parts").objects("conversation_parts")]


def _team_id(item: JsonObject) -> str | None:
    """The team the conversation is assigned to: 2.x `team_assignee_id`, or a 1.x assignee of type team."""
    older = item.optional_object("assignee")
    if older is not None:
        return older.optional_id("id") if older.optional("type", str) == "team" else None
    return item.optional_id("team_assignee_id")


def _statistics_time(item: JsonObject, key: str) -> datetime | None:
    """A time from `statistics`: unix seconds in the REST API, ISO-8601 text in 2.x webhooks. One that is neither
    (or implausible) reads as not said: statistics never make a notification unreadable."""
    statistics = item.data.get("statistics")
    value = statistics.get(key) if isinstance(statistics, dict) else None
    try:
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, tz=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if is_plausible_time(moment.timestamp()) else None


def _channel_source(item: JsonObject, source: JsonObject | None) -> str:
    """Where the conversation began: REST's `channel.initial`, else the webhook's `source.type`; "" if neither says."""
    channel_source = (source.optional("type", str) or "") if source is not None else ""
    initial = item.optional_object("channel")
    return (initial.optional("initial", str) if initial is not None else None) or channel_source


def _first_message_tags(item: JsonObject, parts: list[_Part], first_message_id: str | None) -> tuple[str, ...]:
    """Tags this event shows on the first message (a part tag event on that part)."""
    tagged_first_message = next((p for p in parts if first_message_id and p.id == first_message_id), None)
    if tagged_first_message is None:
        return ()
    # Older shape: the event's added tags sit on the item; newer: on the part.
    added = item.optional_object("tags_added")
    return tagged_first_message.tags or (_tag_names(added) if added else ())


def _closure(parts: list[_Part]) -> Closure | None:
    close_part = next((p for p in parts if p.part_type == "close"), None)
    if close_part is None:
        return None
    return Closure(part_id=close_part.id, at=close_part.created_at, closer=close_part.author)


def _link(item: JsonObject, *, app_id: str, conversation_id: str, app_url: str) -> str:
    """The payload's link, if to Intercom's own pages; otherwise the link is built from the ids."""
    links = item.optional_object("links")
    link = links.optional("conversation_web", str) if links else None
    if link and is_intercom_url(link, app_url=app_url):
        return link
    return app_url + path_of("a", "apps", app_id, "conversations", conversation_id)


def _assignee(item: JsonObject, parts: list[_Part]) -> Assignee:
    """Who the conversation is assigned to at this event, and whether that is a bot."""
    kind, assignee_id, name, email = _assignee_named(item)
    if kind == "nobody_admin":
        return Assignee(AssigneeKind.NOBODY)
    # The newer shape has only the id; a part by the same teammate may carry the name and email.
    if (author := _authored_by(parts, assignee_id)) is not None:
        name, email = name or author.name, email or author.email
    if kind == "team":
        return Assignee(AssigneeKind.TEAM, assignee_id, name)
    is_bot = kind == "bot" or _is_bot(assignee_id, email, parts)
    return Assignee(AssigneeKind.BOT if is_bot else AssigneeKind.ADMIN, assignee_id, name, email)


def _assignee_named(item: JsonObject) -> tuple[str, str | None, str | None, str | None]:
    """The assignee's kind (as Intercom words it), id, name and email, as the payload gives them."""
    older = item.optional_object("assignee")
    if older is not None:
        kind = older.optional("type", str) or "nobody_admin"
        assignee_id = older.optional_id("id")
        name, email = older.optional("name", str), older.optional("email", str) or None
    else:
        kind, assignee_id, name, email = "admin", item.optional_id("admin_assignee_id"), None, None
        if assignee_id is None and item.optional_id("team_assignee_id") is not None:
            kind, assignee_id = "team", item.optional_id("team_assignee_id")
    if assignee_id is None and kind != "team":
        kind = "nobody_admin"
    return kind, assignee_id, name, email


def _authored_by(parts: list[_Part], author_id: str | None) -> Author | None:
    """The author of the first part by `author_id`."""
    if author_id is None:
        return None
    return next((p.author for p in parts if p.author and p.author.id == author_id), None)


def _is_bot(assignee_id: str | None, email: str | None, parts: list[_Part]) -> bool:
    """A teammate is a bot when a part by a bot or assigned to one names them, when their address is Intercom's
    operator's, or when the conversation's closer is a bot."""
    if assignee_id in _bot_ids(parts) or (email and OPERATOR_EMAIL.match(email)):
        return True
    closer = next((p.author for p in parts if p.part_type == "close" and p.author), None)
    return bool(closer and closer.is_bot)


def _bot_ids(parts: list[_Part]) -> set[str]:
    """Teammates the parts show to be bots: by their own parts, or parts assigning to a bot."""
    authors = {p.author.id for p in parts if p.author and p.author.is_bot and p.author.id}
    return authors | {p.assigned_to_id for p in parts if p.assigned_to_type == "bot" and p.assigned_to_id}


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
    if author is not None and (customer := _customer_authoring(author, contact_id)) is not None:
        return customer
    return Customer(id=contact_id, role="contact") if contact_id is not None else None


def _customer_authoring(author: JsonObject, contact_id: str | None) -> Customer | None:
    """The first message's author, when a customer and the conversation's contact (or the only one named)."""
    if author.optional("type", str) not in CUSTOMER_ROLES:
        return None
    author_id = author.optional_id("id")
    if contact_id is not None and author_id != contact_id:
        return None
    return Customer(
        id=author_id,
        role=author.require("type", str),
        name=author.optional("name", str) or None,
        email=author.optional("email", str) or None,
    )


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

    @property
    def is_teammate_comment(self) -> bool:
        """A comment (a reply the customer sees, not a note) written by a human teammate."""
        author = self.author
        return self.part_type == "comment" and author is not None and author.type == "admin" and not author.is_bot
