"""Every CSV file the portal writes goes through this one writer, so none can carry a formula into a spreadsheet.

A text cell is cleaned as on a page (portal.text.displayable), one that a spreadsheet would run as a formula is
made text (OWASP's rule: a single quote before it), and one longer than Excel takes is cut, saying so. Numbers stay
numbers: a negative count is not a formula.
"""

import csv
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from django.http import StreamingHttpResponse

from portal.text import displayable

Cell = str | int | float | Decimal | None
# What Excel, LibreOffice and Google Sheets read as the start of a formula (=, +, -, @, and the tab and CR that
# OWASP lists, which the cleaning has already made a space and a line break), with the full-width forms that some
# locales' Excel reads as the same. Checked after any leading space or line break, which doesn't stop a formula.
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
# Excel's most characters in a cell, counted in UTF-16 code units (an emoji counts twice): past it a row spills.
EXCEL_CELL_LIMIT = 32_767
BOM = "\ufeff"  # so that Excel reads the file as UTF-8 (masked names, dashes, stars)


def csv_cell(value: Cell) -> str | int | float | Decimal:
    """One cell as it is written: a number as it is, None as empty, and text cleaned, disarmed and within Excel's
    limit."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    text = displayable(str(value))
    if text.lstrip()[:1] in FORMULA_STARTS:
        text = "'" + text
    return _within_excel_limit(text)


def _within_excel_limit(text: str) -> str:
    if len(text) <= EXCEL_CELL_LIMIT // 2:  # fits however many code units each character takes
        return text
    units = text.encode("utf-16-le")
    if len(units) // 2 <= EXCEL_CELL_LIMIT:
        return text
    marker = f" […cut at Excel's limit of {EXCEL_CELL_LIMIT:,} characters: {len(text):,} in all]"
    # Cut between code units, so half of a surrogate pair may be left at the end: dropped by the decoding.
    kept = units[: (EXCEL_CELL_LIMIT - len(marker)) * 2].decode("utf-16-le", errors="ignore")
    return kept + marker


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[str]:
    """The file, line by line as it is read from `rows`: the byte order mark and the header, then each row."""

    class Line:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Line())
    yield BOM + writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> StreamingHttpResponse:
    """A CSV download, streamed: rows are read as the file is sent, so a large export holds one row at a time."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
