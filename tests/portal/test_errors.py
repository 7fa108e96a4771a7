"""What is kept of an exception: a storable summary, and a bounded traceback that keeps both of its ends."""

import traceback

from portal.errors import TRACEBACK_HEAD, TRACEBACK_LENGTH, exception_summary, exception_traceback


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_summary_is_the_type_and_message_cut_to_fit_and_storable():
    assert exception_summary(raised(KeyError("assignee"))) == "KeyError: 'assignee'"
    assert exception_summary(raised(ValueError("a\x00b \ud800"))) == "ValueError: a\ufffdb \ufffd"
    assert len(exception_summary(raised(ValueError("x" * 5000)))) == 2000


def test_a_traceback_keeps_a_chain_whole():
    try:
        try:
            {}["assignee"]
        except KeyError as exc:
            raise RuntimeError("the close could not be recorded") from exc
    except RuntimeError as exc:
        text = exception_traceback(exc)
    assert text.startswith("Traceback (most recent call last):")
    assert "KeyError: 'assignee'" in text and "direct cause" in text
    assert text.rstrip().endswith("RuntimeError: the close could not be recorded")


def test_a_long_traceback_is_cut_in_the_middle_and_says_so():
    try:
        raise ValueError("a body quoted whole: " + "x" * 30_000 + " and \x00 the end of it")
    except ValueError as exc:
        whole = "".join(traceback.format_exception(exc))
        text = exception_traceback(exc)
    assert len(whole) > TRACEBACK_LENGTH
    assert len(text) < TRACEBACK_LENGTH + 50
    assert text[:TRACEBACK_HEAD] == whole[:TRACEBACK_HEAD]
    assert f"… {len(whole) - TRACEBACK_LENGTH:,} characters cut …" in text
    assert text.rstrip().endswith("and \ufffd the end of it")
