"""Placeholder: filled in by the onboarding work of issue 9."""

from django.contrib import admin
from django.urls import URLPattern


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The account admin's extra pages for this part, named admin:surveys_account_*."""
    return []
