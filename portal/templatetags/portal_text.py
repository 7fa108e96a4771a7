"""Text from outside on a page: cleaned as every screen shows it, and a long one cut with the rest a click away."""

from typing import Any

from django import template

from portal.text import cut, displayable

register = template.Library()

# Characters of a long quote shown before "Show all": three or four lines of the status page's Stella column.
QUOTE_SHOWN = 60


@register.filter(name="displayable", is_safe=True)
def displayable_filter(text: object) -> str:
    """{{ value|displayable }}: without control characters or bidirectional overrides (portal.text.displayable).
    Markup stays markup: dropping them from escaped text can't make a tag or an entity."""
    return displayable(str(text))


@register.inclusion_tag("portal/long_quote.html")
def long_quote(text: str, limit: int = QUOTE_SHOWN) -> dict[str, Any]:
    """{% long_quote comment %}: a quote whole when short; else its start, and the whole of it behind "Show all"
    (a <details>, so it needs no script)."""
    text = displayable(text)
    start = cut(text, limit)
    return {"text": text, "start": start, "whole": start == text, "length": f"{len(text):,}"}
