"""Configuration on record: every change to a model that declares `ConfigurationHistory` is kept with who made it,
when, through what (the admin, a command, a restore) and the values before and after (django-simple-history).

Secrets are never on record in clear, nor as ciphertext a key could open later: each EncryptedTextField is kept as
its mask and a fingerprint (`SecretFingerprintField`), enough to see that a key changed and to tell two keys apart.
A save that changes nothing leaves no record; the first change to a row made before recording began first records
the row as it was, so every change has its "before".
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.signals import m2m_changed, pre_save
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

from portal.fields import EncryptedTextField, SecretFingerprintField


class Source(models.TextChoices):
    """Through what a configuration changed; the words are what the history shows."""

    ADMIN = "admin", "Admin: account page"
    GO_LIVE = "go_live", "Admin: Go live"
    CHECKLIST = "checklist", "Onboarding checklist"
    CONNECT = "connect", "Connect with Intercom"
    INTERCOM = "intercom", "Told by Intercom"
    UPSERT = "account_upsert", "manage.py account_upsert"
    RESTORE = "restore", "Restore of earlier rules"
    BASELINE = "baseline", "As it was when recording began"
    OTHER = "", "Other (code, shell)"


@dataclass(frozen=True)
class Origin:
    """Who changes the configuration now, and through what: a portal user, or in words (the OS user of a command)."""

    source: str
    user: Any = None
    actor: str = ""


_origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("configuration_origin", default=None)


@contextmanager
def configuration_changed_by(source: str, *, user: Any = None, actor: str = "") -> Iterator[None]:
    """Every change recorded inside this block is put down to `user` (or `actor`, in words) and `source`."""
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    actor = actor or (user.get_username() if user is not None else "")
    token = _origin.set(Origin(source=source, user=user, actor=actor))
    try:
        yield
    finally:
        _origin.reset(token)


class ConfigurationRecord(models.Model):
    """What each record holds besides the model's fields and simple-history's who/when/type."""

    # A Source; without choices here, so rewording one needs no migration.
    history_source = models.CharField("through", max_length=32, blank=True)
    # Who, in words, kept even if the user is deleted later; for a command, the OS user who ran it.
    history_actor = models.CharField("who", max_length=150, blank=True)

    class Meta:
        abstract = True


def _stamp(sender: type[models.Model], history_instance: models.Model, **kwargs: Any) -> None:
    if not isinstance(history_instance, ConfigurationRecord):
        return
    origin = _origin.get()
    if origin is not None:
        history_instance.history_source = origin.source
        history_instance.history_actor = origin.actor[:150]


pre_create_historical_record.connect(_stamp, dispatch_uid="portal.history.stamp")


class ConfigurationHistory(HistoricalRecords):
    """HistoricalRecords with secrets masked, no record for a save that changes nothing, and a baseline record of a
    row's state before the first change recorded for it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("bases", (ConfigurationRecord,))
        super().__init__(**kwargs)

    def copy_fields(self, model: type[models.Model]) -> dict[str, models.Field]:
        fields: dict[str, models.Field] = super().copy_fields(model)
        for name, field in fields.items():
            if isinstance(field, EncryptedTextField):
                _, _, args, field_kwargs = field.deconstruct()
                fields[name] = SecretFingerprintField(*args, **field_kwargs)
        return fields

    def finalize(self, sender: type[models.Model], **kwargs: Any) -> None:
        super().finalize(sender, **kwargs)
        if sender is self.cls:
            pre_save.connect(self._baseline_before_save, sender=sender, weak=False)
            for field in self.get_m2m_fields_from_model(sender):
                m2m_changed.connect(self._baseline_before_m2m, sender=field.remote_field.through, weak=False)

    def m2m_changed(self, instance: models.Model, action: str, attr: str, pk_set: Any, reverse: bool, **_: Any) -> None:
        """Also from the other side (`user.support_accounts.add(account)`): a record for each tracked row changed."""
        if not reverse:
            super().m2m_changed(instance, action, attr, pk_set, reverse)
            return
        for changed in self.cls._base_manager.filter(pk__in=pk_set or ()):
            super().m2m_changed(changed, action, attr, pk_set, False)

    def get_history_user(self, instance: models.Model) -> Any:
        origin = _origin.get()
        if origin is not None and origin.user is not None:
            return origin.user
        return super().get_history_user(instance)

    def create_historical_record(self, instance: models.Model, history_type: str, using: str | None = None) -> None:
        super().create_historical_record(instance, history_type, using=using)
        if history_type == "~":
            self._drop_if_unchanged(instance)

    def _drop_if_unchanged(self, instance: models.Model) -> None:
        """A save (or an m2m add/remove) that changed no field leaves no record."""
        latest = list(getattr(instance, self.manager_name).all()[:2])
        if len(latest) < 2:
            return
        new, old = latest
        if new.diff_against(old, excluded_fields=_automatic_fields(instance)).changes:
            return
        for field in new._history_m2m_fields:
            getattr(new, field.name).all().delete()
        new.delete()

    def _baseline(self, instance: models.Model) -> None:
        """Before the first recorded change to a row saved before recording began: the row as stored."""
        if getattr(instance, "skip_history_when_saving", False) or instance.pk is None:
            return
        if not getattr(settings, "SIMPLE_HISTORY_ENABLED", True) or getattr(instance, self.manager_name).exists():
            return
        stored = type(instance)._base_manager.filter(pk=instance.pk).first()
        if stored is None:
            return
        token = _origin.set(Origin(source=Source.BASELINE))
        try:
            super().create_historical_record(stored, "~")
        finally:
            _origin.reset(token)

    def _baseline_before_save(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        if not kwargs.get("raw", False):
            self._baseline(instance)

    def _baseline_before_m2m(
        self, sender: Any, instance: models.Model, action: str, reverse: bool, pk_set: Any = None, **_: Any
    ) -> None:
        if action not in ("pre_add", "pre_remove", "pre_clear"):
            return
        for changed in self.cls._base_manager.filter(pk__in=pk_set or ()) if reverse else [instance]:
            self._baseline(changed)


def _automatic_fields(instance: models.Model) -> list[str]:
    """Fields the model sets itself on every save (auto_now): a change to only these is no change."""
    return [field.name for field in instance._meta.concrete_fields if getattr(field, "auto_now", False)]
