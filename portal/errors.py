"""What is kept of an exception for an operator: a one-line summary for lists, and its traceback for the page
of the thing that failed. Both bounded, and storable in every database the portal runs on."""

import traceback
from collections.abc import Iterable

from portal.redaction import mask_secret
from portal.text import storable

SUMMARY_LENGTH = 2000
# A traceback longer than this (a deep recursion, a chain of exceptions) keeps its start, where the first
# exception of a chain was raised, and its end, where the last one was: the middle is cut and says so.
TRACEBACK_LENGTH = 16_000
TRACEBACK_HEAD = 4_000


def exception_summary(exc: BaseException) -> str:
    """`KeyError: 'assignee'`: what a list of failures shows."""
    return storable(f"{type(exc).__name__}: {exc}")[:SUMMARY_LENGTH]


def exception_traceback(exc: BaseException, *, secrets: Iterable[str] = ()) -> str:
    """The whole traceback as Python prints it, chained exceptions included, with `secrets` masked should a message
    quote one, cut in the middle past TRACEBACK_LENGTH."""
    text = "".join(traceback.format_exception(exc))
    for secret in secrets:
        if secret:
            text = text.replace(secret, mask_secret(secret))
    return traceback_bounded(text)


def traceback_bounded(text: str) -> str:
    """A traceback already printed (one django-q2 kept of a failed task, say), storable and cut as above."""
    text = storable(text)
    if len(text) <= TRACEBACK_LENGTH:
        return text
    cut = len(text) - TRACEBACK_LENGTH
    return f"{text[:TRACEBACK_HEAD]}\n… {cut:,} characters cut …\n{text[TRACEBACK_HEAD + cut :]}"
