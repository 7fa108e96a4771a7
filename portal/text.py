"""Text from outside (vendors' payloads, customers' words) as every database the portal runs on can store it."""

import json
import re
from typing import Any

# A NUL, or half of a UTF-16 surrogate pair: PostgreSQL refuses the first, and neither encodes as UTF-8.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """Free text (a name, a tag, a comment) with what can't be stored replaced by U+FFFD; the rest kept as it is."""
    return UNSTORABLE.sub("\ufffd", text)


def is_storable(text: str) -> bool:
    """Whether `text` can be stored as it is: what an identifier must be, since a changed id names something else."""
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
