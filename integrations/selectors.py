"""Reads only: nothing here writes."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from integrations.models import Account


def accounts_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Account]:
    """CSMs (staff who may view survey requests) see every account; support users see theirs."""
    if not user.is_authenticated or not user.is_active:
        return Account.objects.none()
    if user.is_staff and user.has_perm("surveys.view_surveyrequest"):
        return Account.objects.all()
    return Account.objects.filter(support_users=user)
