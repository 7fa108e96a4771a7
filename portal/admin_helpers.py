"""Admin pieces every app's admin shares."""

from functools import cached_property
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from portal.text import cut, displayable

# The most of a text a list's cell holds, hover included: a comment of 200,000 characters stays on its row's page.
LIST_TEXT_SHOWN = 300


class ReadOnlyAdminMixin:
    """Logs are evidence: nobody edits or deletes them from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NoCountPaginator(Paginator):
    """Pages a large log without COUNT(*): it reads one row past the page to learn whether
    another page follows, so the first page costs the same on a thousand rows or a million."""

    estimated = True

    def __init__(self, object_list: QuerySet, per_page: int, *, page_number: int = 1, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.page_number = page_number
        self._rows: list[Any] | None = None

    @cached_property
    def count(self) -> int:
        offset = (self.page_number - 1) * self.per_page
        self._rows = list(self.object_list[offset : offset + self.per_page + 1])
        return offset + len(self._rows)

    def page(self, number: int | str) -> Page:
        number = self.validate_number(number)
        if number == self.page_number and self._rows is not None:
            return Page(self._rows[: self.per_page], number, self)
        return super().page(number)


# A name longer than this is cut even in a list's name cell (a name is seldom over 60 characters; one of 10,000 is
# an attack on the layout, not a name).
NAME_SHOWN = 80


def name_cell(text: str) -> SafeString:
    """A name (an account's, a teammate's) in a list: whole, wrapping onto a second line rather than cut, since
    "Northwind Trad…" leaves a CSM guessing which account it is."""
    text = displayable(text)
    return format_html('<span class="name" title="{}">{}</span>', cut(text, LIST_TEXT_SHOWN), cut(text, NAME_SHOWN))


def shortened(text: str, *, title: str = "") -> SafeString:
    """Text cut to its column's width in a list, up to LIST_TEXT_SHOWN characters when hovered, whole on the row's
    page (the list links each row there); control characters and bidirectional overrides dropped."""
    text = displayable(text)
    hover = cut(displayable(title) if title else text, LIST_TEXT_SHOWN)
    return format_html('<span class="short" title="{}">{}</span>', hover, cut(text, LIST_TEXT_SHOWN))
