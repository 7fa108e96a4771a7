"""The message registry: each reason's words in one place in the source, and every stored row readable by code."""

from pathlib import Path

import pytest

from integrations import messages

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {".venv", "migrations", "tests", "node_modules", ".git"}


def _sources() -> dict[Path, str]:
    found = {}
    for pattern in ("*.py", "*.html"):
        for path in ROOT.rglob(pattern):
            if SKIPPED.isdisjoint(path.relative_to(ROOT).parts):
                found[path] = path.read_text(encoding="utf-8")
    return found


def test_each_entrys_words_are_written_in_one_place_only() -> None:
    sources = _sources()
    misplaced = {}
    for words in messages.REASON_GROUPS:
        places = [str(path.relative_to(ROOT)) for path, text in sources.items() if words in text]
        count = sum(text.count(words) for text in sources.values())
        if places != ["integrations/messages.py"] or count != 1:
            misplaced[words] = places
    assert misplaced == {}


def test_codes_are_unique_and_stable_strings() -> None:
    assert len(messages.MESSAGES) == len({entry.code for entry in messages.MESSAGES.values()})
    assert all(code.isidentifier() and code.islower() for code in messages.MESSAGES)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Employee not found", "stella_employee_not_found"),
        ("Employee not found: ada@example.com", "stella_employee_not_found"),
        ("API key rejected", "stella_key_rejected"),
        ("Reopened during the channel delay", "reopened"),
        ("Something Stella never said before", ""),
        ("", ""),
    ],
)
def test_a_message_is_known_by_its_text_and_an_unknown_one_has_no_code(text: str, code: str) -> None:
    assert messages.code_of(text) == code


def test_an_unknown_message_reads_verbatim() -> None:
    assert messages.words_of("", "Stella is having a bad day") == "Stella is having a bad day"


def test_the_reason_dropdown_names_each_cause_once() -> None:
    words = [label for _, label in messages.REASON_CHOICES]
    assert len(words) == len(set(words))
    # A rule that stands for Stella's answer reads as it, and filtering by one finds both.
    assert set(messages.codes_like("employee_unknown")) >= {"employee_unknown", "stella_employee_not_found"}


def test_the_cancellation_codes_have_entries() -> None:
    for code in ("reopened", "customer_replied", "snoozed", "deleted", "superseded", "erased"):
        assert messages.MESSAGES[code].kind == messages.Kind.CANCELLED
