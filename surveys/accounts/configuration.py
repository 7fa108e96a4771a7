"""An account's configuration on record: every change to it and its settings, in words (old → new, who, when, through
what), and putting earlier rules back, itself a recorded change. The recording is portal/history.py's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils.text import capfirst

from portal.durations import format_duration
from portal.fields import EncryptedTextField
from portal.history import Source, configuration_changed_by
from surveys.accounts.account import integration_settings_update
from surveys.models import Account, IntegrationSettings

# Bookkeeping, not configuration: never shown as a change.
NOT_SHOWN = frozenset({"id", "account", "created_at", "updated_at"})
EMPTY = "—"


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class ConfigurationChange:
    """One recorded change: when, who, through what, and each field's old and new value in words."""

    history_id: int
    at: datetime
    who: str
    source: str
    created: bool
    changes: list[FieldChange]
    # For a settings record: whether its rules differ from today's, so putting them back would change something.
    restorable: bool = False


def account_configuration_history(
    account: Account, *, rule_fields: Sequence[str] = (), limit: int = 50
) -> list[ConfigurationChange]:
    """The account's recorded changes, newest first: its own (name, workspace, support users) and its settings'.
    `rule_fields`: the settings a restore puts back; a settings record whose rules differ from today's is restorable."""
    integration = IntegrationSettings.objects.filter(account=account).first()
    found = _changes(Account.history.filter(id=account.pk), current=None, rule_fields=())
    if integration is not None:
        found += _changes(
            IntegrationSettings.history.filter(id=integration.pk), current=integration, rule_fields=rule_fields
        )
    found.sort(key=lambda change: (change.at, change.history_id), reverse=True)
    return found[:limit]


def _changes(
    records: models.QuerySet[Any], *, current: IntegrationSettings | None, rule_fields: Sequence[str]
) -> list[ConfigurationChange]:
    ordered = list(records.order_by("history_date", "history_id"))
    found = []
    for previous, record in zip([None, *ordered], ordered, strict=False):
        changes = _field_changes(record, previous)
        if not changes and record.history_type != "+":
            continue
        found.append(
            ConfigurationChange(
                history_id=record.history_id,
                at=record.history_date,
                who=record.history_actor or EMPTY,
                source=_source_words(record.history_source),
                created=record.history_type == "+",
                changes=changes,
                restorable=current is not None
                and record.history_type != "-"
                and any(getattr(record, name) != getattr(current, name) for name in rule_fields),
            )
        )
    return found


def _source_words(code: str) -> str:
    try:
        return str(Source(code).label)
    except ValueError:
        return code


def _field_changes(record: Any, previous: Any | None) -> list[FieldChange]:
    """Each field that differs from the previous record (every set field, for the first), in the model's order."""
    if previous is None:
        shown = [(field, EMPTY, _words(field, record)) for field in _shown_fields(record)]
        return [_change(field, old, new) for field, old, new in shown if new != _words(field, None)]
    changed = set(record.diff_against(previous).changed_fields)
    return [
        _change(field, _words(field, previous), _words(field, record))
        for field in _shown_fields(record)
        if field.name in changed
    ]


def _shown_fields(record: Any) -> list[Any]:
    """The fields on record, in the model's order, without bookkeeping."""
    tracked = {field.name for field in record.tracked_fields} | {field.name for field in record._history_m2m_fields}
    return [
        field
        for field in record.instance_type._meta.get_fields()
        if field.name in tracked and field.name not in NOT_SHOWN
    ]


def _change(field: Any, old: str, new: str) -> FieldChange:
    return FieldChange(label=capfirst(str(field.verbose_name)), old=old, new=new)


def _words(field: Any, record: Any | None) -> str:
    """A field's value as the admin's form shows it; `record` None: its default."""
    if isinstance(field, models.ManyToManyField):
        return _people(record, field) if record is not None else EMPTY
    value = getattr(record, field.attname) if record is not None else field.get_default()
    if value in (None, ""):
        return EMPTY
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, timedelta):
        return format_duration(value)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    return str(value)


def _people(record: Any, field: models.ManyToManyField) -> str:
    through = getattr(record, field.name)
    user_ids = through.values_list(field.m2m_reverse_field_name(), flat=True)
    names = sorted(get_user_model().objects.filter(pk__in=list(user_ids)).values_list("username", flat=True))
    return ", ".join(names) or EMPTY


class NotRestorable(Exception):
    """What was asked can't be put back: a secret (history keeps only its fingerprint), or no such record."""


def integration_rules_restore(
    integration: IntegrationSettings, *, history_id: int, fields: Iterable[str], user: Any
) -> list[str]:
    """Put the rules `fields` back as they were in the settings record `history_id`, through the same service as
    the admin's form, recorded as a restore by `user`. Returns the fields that changed (none: nothing recorded)."""
    names = list(fields)
    if any(isinstance(IntegrationSettings._meta.get_field(name), EncryptedTextField) for name in names):
        raise NotRestorable("Keys are on record only as fingerprints: they can't be put back.")
    record = IntegrationSettings.history.filter(id=integration.pk, history_id=history_id).first()
    if record is None or record.history_type == "-":
        raise NotRestorable("That version of the settings is not on record.")
    changes = {name: getattr(record, name) for name in names if getattr(record, name) != getattr(integration, name)}
    if changes:
        with transaction.atomic(), configuration_changed_by(Source.RESTORE, user=user):
            integration_settings_update(integration, **changes)
    return list(changes)
