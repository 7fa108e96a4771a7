"""The read-only JSON API: the status page's rows, filters and scoping, for scripts and dashboards.

Customers, outcomes and reasons come from the presenter, as on the page and in its CSV: masked the same, worded
the same. Times are ISO 8601 with their offset, in the portal's zone (TIME_ZONE), whoever asks: a script's
output doesn't follow a person's choice on the page.
"""

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from surveys.models import ApiRequest, SurveyRequest
from surveys.presenters import Presented, present
from surveys.selectors import accounts_visible_to
from surveys.status import (
    API_REQUESTS,
    EVERY_API_REQUEST,
    EVERY_SURVEY_REQUEST,
    SURVEY_REQUESTS,
    TABS,
    TABS_BY_KEY,
    Listing,
    StatusFilter,
    StatusFilterForm,
    Tab,
    status_rows,
)


def parse_datetime_safely(value: str) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError:  # well formed but impossible, e.g. a 31st of February
        return None


class PresentedSerializer(serializers.ModelSerializer):
    """A row's model fields, and what every screen shows of it (present()): the customer masked, the reason in
    plain words."""

    shown: Presented
    account = serializers.CharField(source="account.name")
    customer_name = serializers.SerializerMethodField(help_text="Masked, as on the status page.")
    customer_email = serializers.SerializerMethodField(help_text="Masked, as on the status page.")

    def to_representation(self, instance: Any) -> Any:
        self.shown = present(instance)  # once per row, for the fields below
        return super().to_representation(instance)

    def get_customer_name(self, row: Any) -> str:
        return self.shown.customer_name

    def get_customer_email(self, row: Any) -> str:
        return self.shown.customer


class SurveyRequestSerializer(PresentedSerializer):
    reason_text = serializers.SerializerMethodField(help_text="The reason, in plain words.")

    class Meta:
        model = SurveyRequest
        fields = [
            "id", "account", "conversation_id", "conversation_url", "closed_at", "channel", "customer_name",
            "customer_email", "teammate_name", "teammate_email", "status", "decision", "reason", "reason_text",
            "status_detail", "mode", "send_after", "sent_at", "attempts",
        ]  # fmt: skip

    def get_reason_text(self, survey_request: SurveyRequest) -> str:
        return self.shown.explanation


class ApiRequestSerializer(PresentedSerializer):
    conversation_id = serializers.CharField(source="survey_request.conversation_id")
    conversation_url = serializers.CharField(source="survey_request.conversation_url")
    channel = serializers.CharField(source="survey_request.channel")
    teammate = serializers.CharField(source="survey_request.teammate_name")
    explanation = serializers.SerializerMethodField(help_text="The error message, in plain words.")

    class Meta:
        model = ApiRequest
        fields = [
            "id", "survey_request", "account", "created_at", "mode", "conversation_id", "conversation_url", "channel",
            "customer_name", "customer_email", "teammate", "outcome", "status_code", "error_message", "explanation",
            "duration_ms", "rejected_locally",
        ]  # fmt: skip

    def get_explanation(self, api_request: ApiRequest) -> str:
        return self.shown.explanation


class NewestFirst(CursorPagination):
    """Pages by position in the log, never by counting it."""

    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"

    def decode_cursor(self, request: Request) -> Cursor | None:
        """A cursor we didn't make (its position is not a time) is refused like any invalid one, never queried."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and parse_datetime_safely(str(cursor.position)) is None:
            raise NotFound(self.invalid_cursor_message)
        return cursor


class ByClosure(NewestFirst):
    ordering = ("-closed_at", "-id")


class ByCall(NewestFirst):
    ordering = ("-created_at", "-id")


FILTERS = [
    OpenApiParameter("account", int, description="One of your accounts (default: all of them)."),
    OpenApiParameter(
        "date_from", str, description="YYYY-MM-DD, a day in the portal's time zone (default: 30 days before date_to)."
    ),
    OpenApiParameter("date_to", str, description="YYYY-MM-DD, a day in the portal's time zone (default: today)."),
    OpenApiParameter("channel", str, enum=["email", "chat", "unsupported"]),
    OpenApiParameter("reason", str, description="A Stella error message, or a suppression reason code."),
    OpenApiParameter("q", str, description="A conversation id."),
]


class StatusViewSet(viewsets.ReadOnlyModelViewSet):
    """Rows of the status page, as JSON: only your accounts, with the page's filters."""

    listing: Listing
    every: Tab
    pagination_class = NewestFirst

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        timezone.activate(timezone.get_default_timezone())  # the middleware undoes it when the request ends

    def get_queryset(self) -> QuerySet[Any]:
        accounts = accounts_visible_to(self.request.user)
        if self.action != "list":
            return self.every_row(accounts)
        form = StatusFilterForm(self.request.query_params, accounts=accounts)
        if not form.is_valid():
            raise ValidationError(
                {field: [error["message"] for error in errors.get_json_data()] for field, errors in form.errors.items()}
            )
        tab = form.cleaned_data.get("tab")
        if tab and TABS_BY_KEY[tab].listing is not self.listing:
            others = "API requests" if TABS_BY_KEY[tab].listing is API_REQUESTS else "survey requests"
            raise ValidationError({"tab": [f"Tab {tab} lists {others}, not these."]})
        return status_rows(StatusFilter.from_form(form, accounts=accounts, default_tab=self.every)).order_by()

    def every_row(self, accounts: QuerySet[Any]) -> QuerySet[Any]:
        raise NotImplementedError


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("tab", str, enum=[t.key for t in TABS if t.listing is SURVEY_REQUESTS]), *FILTERS]
    )
)
class SurveyRequestViewSet(StatusViewSet):
    """Survey requests: one per closed conversation, with what was decided and why."""

    serializer_class = SurveyRequestSerializer
    listing, every = SURVEY_REQUESTS, EVERY_SURVEY_REQUEST
    pagination_class = ByClosure

    def every_row(self, accounts: QuerySet[Any]) -> QuerySet[SurveyRequest]:
        return SurveyRequest.objects.select_related("account").filter(account__in=accounts)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("tab", str, enum=[t.key for t in TABS if t.listing is API_REQUESTS]), *FILTERS]
    )
)
class ApiRequestViewSet(StatusViewSet):
    """The log of requests to Stella (and of those rejected before reaching it), with their outcomes."""

    serializer_class = ApiRequestSerializer
    listing, every = API_REQUESTS, EVERY_API_REQUEST
    pagination_class = ByCall

    def every_row(self, accounts: QuerySet[Any]) -> QuerySet[ApiRequest]:
        return ApiRequest.objects.select_related("account", "survey_request").filter(account__in=accounts)
