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
    """A duration typed as 30m, 2h, 7d, between `minimum` and `maximum`; its help ends with the bounds and an example,
    so nobody learns them from an error."""

    def __init__(
        self,
        *,
        minimum: timedelta = timedelta(0),
        maximum: timedelta | None = None,
        example: str = "",
        **kwargs: object,
    ) -> None:
        self.minimum, self.maximum = minimum, maximum
        if maximum is not None or minimum:
            help_text = str(kwargs.pop("help_text", "") or "").rstrip(". ")
            bounds = (
                f"from {format_duration(minimum)} to {format_duration(maximum)}"
                if maximum
                else (f"at least {format_duration(minimum)}")
            )
            kwargs["help_text"] = f"{help_text}: {bounds}, e.g. {example or '30m, 2h or 7d'}.".lstrip(": ")
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def validate(self, value: object) -> None:
        super().validate(value)
        if not isinstance(value, timedelta):
            return
        if value < self.minimum:
            raise forms.ValidationError(f"At least {format_duration(self.minimum)}.")
        if self.maximum is not None and value > self.maximum:
            raise forms.ValidationError(f"At most {format_duration(self.maximum)}.")

    def prepare_value(self, value: object) -> object:
        return format_duration(value) if isinstance(value, timedelta) else value

    def to_python(self, value: object) -> timedelta | None:
        if isinstance(value, timedelta):
            return value
        if not self.required and not str(value or "").strip():
            return None  # left empty: the form decides (e.g. keeps the stored value)
        try:
            return parse_duration_text(str(value or ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
