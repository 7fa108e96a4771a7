"""Durations as CSMs write them: 90s, 30m, 2h, 7d, 1h30m (0 for none)."""

import re
from datetime import timedelta

from django import forms
from django.utils.dateparse import parse_duration

_PART = re.compile(r"(\d+)\s*([dhms])", re.IGNORECASE)
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration_text(text: str) -> timedelta:
    text = text.strip()
    if text in ("", "0"):
        return timedelta(0)
    compact = text.replace(" ", "")
    if _PART.sub("", compact) == "" and _PART.search(compact):
        return timedelta(**{_UNITS[unit.lower()]: int(n) for n, unit in _PART.findall(compact)})
    parsed = parse_duration(text)
    if parsed is None or parsed < timedelta(0):
        raise ValueError(f"{text!r} is not a duration; write e.g. 30m, 2h, 7d or 1h30m")
    return parsed


def format_duration(value: timedelta | None) -> str:
    if not value:
        return "0"
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class HumanDurationField(forms.Field):
    def prepare_value(self, value: object) -> object:
        return format_duration(value) if isinstance(value, timedelta) else value

    def to_python(self, value: object) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration_text(str(value or ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
