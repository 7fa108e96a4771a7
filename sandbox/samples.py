"""Intercom notifications in the newer (2.x) webhook shape, built for demos and benchmarks.

They follow the real captures in tests/fixtures/intercom/ field for field, with the
values a scenario needs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from portal.paths import path_of

SOURCE_TYPES = {"chat": "conversation", "email": "email"}


def _envelope(topic: str, *, app_id: str, at: int, item: dict[str, Any], notification_id: str | None) -> dict[str, Any]:
    return {
        "type": "notification_event",
        "app_id": app_id,
        "data": {"type": "notification_event_data", "item": item},
        "links": {},
        "id": notification_id or f"notif_{uuid.uuid4()}",
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": at,
        "created_at": at,
        "self": None,
    }


def _part(
    part_id: str, part_type: str, *, at: int, author: dict[str, Any], body: str | None = None, tags: list | None = None
) -> dict[str, Any]:
    return {
        "type": "conversation_part",
        "id": part_id,
        "part_type": part_type,
        "body": body,
        "created_at": at,
        "updated_at": at,
        "notified_at": at,
        "assigned_to": None,
        "author": author,
        "attachments": [],
        "external_id": None,
        "redacted": False,
        "metadata": {},
        "email_message_metadata": None,
        "state": "closed" if part_type == "close" else "open",
        "tags": tags or [],
        "event_details": {},
        "app_package_code": None,
    }


def conversation_item(
    *,
    conversation_id: str,
    channel: str,
    customer_id: str,
    customer_name: str | None,
    customer_email: str,
    assignee_id: str | None,
    tags: tuple[str, ...],
    parts: list[dict[str, Any]],
    state: str,
    started_at: int,
    team_id: str | None = None,
    last_admin_reply_at: int | None = None,
) -> dict[str, Any]:
    """A conversation as 2.x webhooks and the REST API describe it: `statistics.last_admin_reply_at` in a webhook's
    ISO-8601 text."""
    return {
        "type": "conversation",
        "id": conversation_id,
        "created_at": started_at,
        "updated_at": parts[-1]["created_at"] if parts else started_at,
        "waiting_since": None,
        "snoozed_until": None,
        "source": {
            "type": SOURCE_TYPES.get(channel, channel),
            "id": f"{conversation_id}-source",
            "delivered_as": "customer_initiated",
            "subject": "",
            "body": "<p>Hello, I need a hand with my order.</p>",
            "author": {"type": "user", "id": customer_id, "name": customer_name, "email": customer_email},
            "attachments": [],
            "url": None,
            "redacted": False,
        },
        "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": customer_id, "external_id": None}]},
        "admin_assignee_id": int(assignee_id) if assignee_id else None,
        "team_assignee_id": int(team_id) if team_id else None,
        "open": state != "closed",
        "state": state,
        "read": True,
        "tags": {
            "type": "tag.list",
            "tags": [{"type": "tag", "id": str(1000 + i), "name": tag} for i, tag in enumerate(tags)],
        },
        "priority": "not_priority",
        "statistics": {
            "type": "conversation_statistics",
            "last_admin_reply_at": _iso(last_admin_reply_at) if last_admin_reply_at else None,
        },
        "teammates": {"type": "admin.list", "admins": [{"type": "admin", "id": assignee_id}] if assignee_id else []},
        "conversation_parts": {
            "type": "conversation_part.list",
            "conversation_parts": parts,
            "total_count": len(parts),
        },
    }


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def comment(part_id: str, *, at: int, author: Person) -> dict[str, Any]:
    """A reply a teammate wrote (part_type comment), as a conversation's parts hold it."""
    return _part(part_id, "comment", at=at, author=_author(author), body="<p>Here you go.</p>")


Person = tuple[str, str | None, str | None]  # id, name, email

CUSTOMER: Person = ("contact-1", "Ada Customer", "ada@customer.example")
TEAMMATE: Person = ("4100001", "Tess Teammate", "tess@support.example")


def closed_conversation(
    *,
    app_id: str,
    conversation_id: str,
    at: int,
    channel: str = "chat",
    customer: Person = CUSTOMER,
    teammate: Person = TEAMMATE,
    bot: bool = False,
    tags: tuple[str, ...] = (),
    notification_id: str | None = None,
    team_id: str | None = None,
    last_admin_reply_at: int | None = None,
) -> dict[str, Any]:
    """`conversation.admin.closed`: closed by its assignee (a teammate, or Fin when bot=True), assigned to the team
    `team_id` too if given; a teammate last replied at `last_admin_reply_at` (statistics), if given."""
    author = _author(teammate)
    if bot:
        author = {"id": teammate[0], "type": "bot", "name": "Fin", "email": f"operator+{app_id}@intercom.io"}
    body = _conversation_event(
        "conversation.admin.closed", "close", app_id=app_id, conversation_id=conversation_id, at=at,
        channel=channel, customer=customer, assignee_id=teammate[0], author=author, tags=tags,
        notification_id=notification_id,
    )  # fmt: skip
    item = body["data"]["item"]
    item["team_assignee_id"] = int(team_id) if team_id else None
    item["statistics"]["last_admin_reply_at"] = _iso(last_admin_reply_at) if last_admin_reply_at else None
    return body


def reopened_conversation(
    *,
    app_id: str,
    conversation_id: str,
    at: int,
    channel: str = "chat",
    customer: Person = CUSTOMER,
    teammate: Person = TEAMMATE,
    notification_id: str | None = None,
) -> dict[str, Any]:
    """`conversation.admin.opened`: a teammate reopened it."""
    return _conversation_event(
        "conversation.admin.opened", "open", app_id=app_id, conversation_id=conversation_id, at=at,
        channel=channel, customer=customer, assignee_id=teammate[0], author=_author(teammate), tags=(),
        notification_id=notification_id,
    )  # fmt: skip


def _author(teammate: Person) -> dict[str, Any]:
    teammate_id, name, email = teammate
    return {"id": teammate_id, "type": "admin", "name": name, **({"email": email} if email else {})}


def _conversation_event(
    topic: str,
    part_type: str,
    *,
    app_id: str,
    conversation_id: str,
    at: int,
    channel: str,
    customer: Person,
    assignee_id: str,
    author: dict[str, Any],
    tags: tuple[str, ...],
    notification_id: str | None,
) -> dict[str, Any]:
    customer_id, customer_name, customer_email = customer
    item = conversation_item(
        conversation_id=conversation_id,
        channel=channel,
        customer_id=customer_id,
        customer_name=customer_name,
        customer_email=customer_email or "",
        assignee_id=assignee_id,
        tags=tags,
        parts=[_part(f"{conversation_id}-{part_type}-{at}", part_type, at=at, author=author)],
        state="closed" if part_type == "close" else "open",
        started_at=at - 600,
    )
    return _envelope(topic, app_id=app_id, at=at, item=item, notification_id=notification_id)


def closed_conversation_v1(
    *,
    app_id: str,
    conversation_id: str,
    at: int,
    customer: Person = CUSTOMER,
    teammate: Person = TEAMMATE,
    notification_id: str | None = None,
) -> dict[str, Any]:
    """`conversation.admin.closed` in the older (1.x) shape: full user and assignee, but no channel."""
    customer_id, customer_name, customer_email = customer
    teammate_id, teammate_name, teammate_email = teammate
    close = _part(
        f"{conversation_id}-close-{at}",
        "close",
        at=at,
        author={"type": "admin", "id": teammate_id, "name": teammate_name},
    )
    for newer_only in (
        "redacted",
        "metadata",
        "email_message_metadata",
        "state",
        "tags",
        "event_details",
        "app_package_code",
    ):
        del close[newer_only]
    item = {
        "type": "conversation",
        "id": conversation_id,
        "created_at": at - 600,
        "updated_at": at,
        "user": {
            "type": "user",
            "id": customer_id,
            "user_id": None,
            "name": customer_name,
            "email": customer_email or "",
            "do_not_track": None,
        },
        "assignee": {"type": "admin", "id": teammate_id, "name": teammate_name, "email": teammate_email},
        "conversation_message": {
            "type": "conversation_message",
            "id": f"{conversation_id}-message",
            "url": None,
            "subject": "",
            "body": "<p>Hello, I need a hand with my order.</p>",
            "author": {"type": "user", "id": customer_id},
            "attachments": [],
        },
        "conversation_parts": {"type": "conversation_part.list", "conversation_parts": [close], "total_count": 1},
        "open": False,
        "state": "closed",
        "snoozed_until": None,
        "read": True,
        "metadata": {},
        "tags": {"type": "tag.list", "tags": []},
        "tags_added": {"type": "tag.list", "tags": []},
        "links": {
            "conversation_web": "https://app.intercom.com"
            + path_of("a", "apps", app_id, "conversations", conversation_id)
        },
    }
    return _envelope("conversation.admin.closed", app_id=app_id, at=at, item=item, notification_id=notification_id)
