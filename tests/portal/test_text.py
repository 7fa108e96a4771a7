"""Text from outside as people are shown it: without controls or bidirectional overrides, and cut to a length."""

import pytest

from portal.text import cut, displayable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("Thanks!\nBye", "Thanks!\nBye"),  # a line break is text
        ("one\r\ntwo\rthree", "one\ntwo\nthree"),
        ("tab\there", "tab here"),
        ("bell\x07 escape\x1b[31m nul\x00 del\x7f c1\x85\x9b", "bell escape[31m nul del c1"),
        ("\u202egnp.exe", "gnp.exe"),  # the right-to-left override that turns it into exe.png
        ("a\u202ab\u202bc\u202cd\u202de\u2066f\u2067g\u2068h\u2069", "abcdefgh"),
        ("שלום\u200f Ada", "שלום\u200f Ada"),  # a right-to-left mark reorders nothing: kept
        ("Zoë 😀 ＝１", "Zoë 😀 ＝１"),
    ],
)
def test_displayable_text_drops_controls_and_overrides_and_keeps_the_rest(text, shown):
    assert displayable(text) == shown


def test_a_text_that_fits_is_whole_and_a_long_one_ends_at_a_word_with_an_ellipsis():
    assert cut("Short and sweet", 20) == "Short and sweet"
    assert cut("The agent was wonderful and patient", 20) == "The agent was wonde…"  # no space in its last fifth
    assert cut("The agent was wonderful and patient", 27) == "The agent was wonderful…"
    assert cut("x" * 50, 20) == "x" * 19 + "…"  # one long word: cut in it
    assert all(len(cut("word " * 100, limit)) <= limit for limit in (5, 20, 140))
