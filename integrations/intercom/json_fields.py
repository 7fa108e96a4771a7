"""Reading what Intercom sends, trusting none of it: the body loaded within bounds (UTF-8, no byte order mark,
nested at most MAX_DEPTH deep), and each field read through `JsonObject`, which checks its kind, keeps every
string storable and names the field's dotted path in every error. integrations/intercom/payloads.py reads the
notification's shapes with it; the REST client reads Intercom's answers with it.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from integrations.vocabulary import MALFORMED_AHEAD
from portal.paths import DOT_SEGMENTS
from portal.text import is_storable, storable

T = TypeVar("T")


class PayloadError(ValueError):
    """The body is not an Intercom notification we can read; the message names the field."""


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
        if not is_plausible_time(seconds):
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


def is_plausible_time(seconds: float) -> bool:
    """A time Intercom could have sent (unix seconds): since Intercom began, and not later than the clock allows."""
    return EARLIEST_TIME.timestamp() <= seconds <= time.time() + MAX_CLOCK_AHEAD.total_seconds()


def load_bounded(body: bytes | str) -> Any:
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
    if _nesting(text) > MAX_DEPTH:
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"body is not JSON: {str(exc)[:200]}") from None


def _nesting(text: str) -> int:
    """How deep the JSON `text` nests, or at least an upper bound on it that is at most MAX_DEPTH."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # too few brackets to nest too deep: a notification has 20 to 35; skip the scan, a third of a parse
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


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
