"""Text from outside (vendors' payloads, customers' words) as every database the portal runs on can store it."""

import re

# A NUL, or half of a UTF-16 surrogate pair: PostgreSQL refuses the first, and neither encodes as UTF-8.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """Free text (a name, a tag, a comment) with what can't be stored replaced by U+FFFD; the rest kept as it is."""
    return UNSTORABLE.sub("\ufffd", text)


def is_storable(text: str) -> bool:
    """Whether `text` can be stored as it is: what an identifier must be, since a changed id names something else."""
    return UNSTORABLE.search(text) is None
