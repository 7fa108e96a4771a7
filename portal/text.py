"""Text from outside (vendors' payloads, customers' words) as every database the portal runs on can store it, and
as people are shown it."""

import json
import re
from typing import Any

# A NUL, or half of a UTF-16 surrogate pair: PostgreSQL refuses the first, and neither encodes as UTF-8.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What garbles or disguises text on a screen or in a spreadsheet: the C0 controls but the line break, DEL, the C1
# controls, and the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which can make
# "gpj.exe" read "exe.jpg". Marks (U+200E, U+200F) stay: right-to-left text needs them and they reorder nothing.
UNDISPLAYABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
LINE_BREAKS = re.compile("\r\n?")


def storable(text: str) -> str:
    """Free text (a name, a tag, a comment) with what can't be stored replaced by U+FFFD; the rest kept as it is."""
    if text.isascii() and "\x00" not in text:  # most text, told at once (isascii reads a flag): a tenth of the sub
        return text
    return UNSTORABLE.sub("\ufffd", text)


def is_storable(text: str) -> bool:
    """Whether `text` can be stored as it is: what an identifier must be, since a changed id names something else."""
    if text.isascii():
        return "\x00" not in text
    return UNSTORABLE.search(text) is None


def storable_data(value: Any) -> Any:
    """Parsed JSON (a vendor's record) with every string in it, keys too, made `storable`: what a JSON column takes
    on every database (PostgreSQL's jsonb refuses \\u0000 and a lone surrogate's escape as well)."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(key) if isinstance(key, str) else key: storable_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable_data(item) for item in value]
    return value


def storable_json(value: Any) -> str:
    """Parsed JSON as JSON text every database stores in a text column, changed in nothing: a NUL or half a
    surrogate pair is written as its escape (\\u0000), so `json.loads` gives `value` back exactly."""
    return UNSTORABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", json.dumps(value, ensure_ascii=False))


def displayable(text: str) -> str:
    """Text from outside as people are shown it, on a page or in a CSV: a tab reads as a space and a CR (or CRLF)
    as a line break; other control characters and bidirectional overrides are dropped; the rest is kept as it is.
    The stored text stays whole."""
    return UNDISPLAYABLE.sub("", LINE_BREAKS.sub("\n", text).replace("\t", " "))


def cut(text: str, limit: int) -> str:
    """At most `limit` characters: the text whole when it fits, else its start, ended at a space when one falls in
    the last fifth (so no word is cut in two), then "…"."""
    if len(text) <= limit:
        return text
    start = text[: limit - 1]
    space = max(start.rfind(" "), start.rfind("\n"))
    if space >= limit * 4 // 5:
        start = start[:space]
    return start.rstrip() + "…"


def plural(count: int, noun: str, plural_form: str = "") -> str:
    """ "1 request", "2 requests": a count with its noun, never "request(s)"."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
