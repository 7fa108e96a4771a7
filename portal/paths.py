"""URL paths that hold ids from outside: each id stays one whole segment and names only itself."""

from urllib.parse import quote

from portal.text import is_storable

# A client resolves these as "here" and "parent" whatever their encoding (requests turns %2E back into "."), so an
# id that is one of them would walk the path: such an id names no record.
DOT_SEGMENTS = frozenset({".", ".."})


class NotAPathSegment(ValueError):
    """An id that can't be one path segment: empty, `.` or `..`, or holding a NUL or half a surrogate pair."""

    def __init__(self, segment: str) -> None:
        super().__init__(f"{segment[:64]!r} can't be one segment of a URL path")
        self.segment = segment


def path_of(*segments: str) -> str:
    """`/conversations/{id}/reply` from ("conversations", id, "reply"): every segment quoted whole, so a `/`, `?`,
    `#` or `%` in an id stays inside its segment; NotAPathSegment for one that can't be a segment."""
    for segment in segments:
        if segment == "" or segment in DOT_SEGMENTS or not is_storable(segment):
            raise NotAPathSegment(segment)
    return "".join("/" + quote(segment, safe="") for segment in segments)
