"""The read-only JSON API: the status page's rows, filters and scoping, for scripts and dashboards.

Customers, outcomes and reasons come from the presenter, as on the page and in its CSV: masked the same, worded
the same. Times are ISO 8601 with their offset, in the portal's zone (TIME_ZONE), whoever asks: a script's
output doesn't follow a person's choice on the page.
"""

from datetime import datetime
from typing import Any, cast

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from surveys.models import ApiRequest, SurveyRequest, SurveyRequestQuerySet
from surveys.reporting.presenters import Presented, present
from surveys.reporting.status import (
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
from surveys.reporting.teammate_figures import FEW_RESPONSES, GROUPS
from surveys.reporting.teammate_stats import (
    DEFAULT_SORT,
    SORTS,
    TEAMMATE_FILTERS,
    teammate_stats,
)
from surveys.selectors import accounts_visible_to, is_csm


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
    account_id = serializers.IntegerField(help_text="The account's id: what the `account` filter takes.")
    customer_name = serializers.SerializerMethodField(help_text="Masked, as on the status page.")
    customer_email = serializers.SerializerMethodField(help_text="Masked, as on the status page.")
    outcome_label = serializers.SerializerMethodField(
        help_text="Where it stands, in the words of the status page, its CSV and the admin (“Sent, flagged do not "
        "send”, “Invalid”…)."
    )
    reason_label = serializers.SerializerMethodField(
        help_text="The reason's name, as every screen gives it; empty: none."
    )

    def to_representation(self, instance: Any) -> Any:
        self.shown = present(instance, csm=is_csm(self.context["request"].user))  # once per row, for the fields below
        return super().to_representation(instance)

    def get_customer_name(self, row: Any) -> str:
        return self.shown.customer_name

    def get_customer_email(self, row: Any) -> str:
        return self.shown.customer

    def get_outcome_label(self, row: Any) -> str:
        return self.shown.outcome

    def get_reason_label(self, row: Any) -> str:
        return self.shown.reason


class SurveyRequestSerializer(PresentedSerializer):
    reason_text = serializers.SerializerMethodField(help_text="What the reason means, in plain words.")
    delivery_status = serializers.SerializerMethodField(
        help_text="Stella's delivery status in its words (“Delivered”, “Not sent: suppression period”, “Hard "
        "bounce”…), from its feedback record; empty until Stella reports the request."
    )
    delivery_explanation = serializers.SerializerMethodField(help_text="The delivery status, in plain words.")
    star_rating = serializers.SerializerMethodField(help_text="The customer's star rating, 1 to 5; null: none.")
    comment = serializers.SerializerMethodField(
        help_text="The customer's comment, email addresses in it masked as the customer's are; empty once erased."
    )
    reconcile_text = serializers.SerializerMethodField(
        help_text="Why a person should look at the request, in plain words (reconcile_flag); empty: no need."
    )
    resolved = serializers.BooleanField(
        read_only=True, help_text="Sent since a call to Stella for it failed (a resend, a retry): nothing left to fix."
    )

    class Meta:
        model = SurveyRequest
        fields = [
            "id", "account", "account_id", "conversation_id", "conversation_url", "closed_at", "channel",
            "customer_name", "customer_email", "teammate_name", "teammate_email", "status", "outcome_label", "decision",
            "reason", "reason_label", "reason_text", "status_detail", "mode", "send_after", "sent_at", "attempts",
            "delivery_status", "delivery_explanation", "star_rating", "comment", "reconcile_flag", "reconcile_text",
            "resolved",
        ]  # fmt: skip

    def get_reason_text(self, survey_request: SurveyRequest) -> str:
        return self.shown.explanation

    def get_delivery_status(self, survey_request: SurveyRequest) -> str:
        return self.shown.delivery_status

    def get_delivery_explanation(self, survey_request: SurveyRequest) -> str:
        return self.shown.delivery_explanation

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_star_rating(self, survey_request: SurveyRequest) -> int | None:
        return self.shown.star_rating

    def get_comment(self, survey_request: SurveyRequest) -> str:
        return self.shown.comment

    def get_reconcile_text(self, survey_request: SurveyRequest) -> str:
        return self.shown.reconcile


class ApiRequestSerializer(PresentedSerializer):
    conversation_id = serializers.CharField(source="survey_request.conversation_id")
    conversation_url = serializers.CharField(source="survey_request.conversation_url")
    channel = serializers.CharField(source="survey_request.channel")
    teammate = serializers.CharField(source="survey_request.teammate_name")
    explanation = serializers.SerializerMethodField(help_text="The error message, in plain words.")
    resolved = serializers.BooleanField(
        source="is_resolved",
        read_only=True,
        help_text="A call that failed whose survey request was sent since (by a resend): nothing left to fix.",
    )

    class Meta:
        model = ApiRequest
        fields = [
            "id", "survey_request", "account", "account_id", "created_at", "mode", "conversation_id", "conversation_url",
            "channel", "customer_name", "customer_email", "teammate", "outcome", "outcome_label", "status_code",
            "error_message", "reason_label", "explanation", "duration_ms", "rejected_locally", "resolved",
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


def raise_form_errors(form: StatusFilterForm) -> None:
    """A filter that isn't valid answers 400 with the reasons per parameter."""
    raise ValidationError(
        {field: [error["message"] for error in errors.get_json_data()] for field, errors in form.errors.items()}
    )


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
            raise_form_errors(form)
        tab = form.cleaned_data.get("tab")
        if tab and TABS_BY_KEY[tab].listing is not self.listing:
            others = "API requests" if TABS_BY_KEY[tab].listing is API_REQUESTS else "survey requests"
            raise ValidationError({"tab": [f"Tab {tab} lists {others}, not these."]})
        return self.annotated(
            status_rows(StatusFilter.from_form(form, accounts=accounts, default_tab=self.every)).order_by()
        )

    def annotated(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        """What a row's serializer needs beyond its fields."""
        return rows

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
        return self.annotated(SurveyRequest.objects.select_related("account", "feedback").filter(account__in=accounts))

    def annotated(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        return cast(SurveyRequestQuerySet, rows).with_resolved()  # status_rows' survey requests, or every_row's


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


class TeammatePreviousSerializer(serializers.Serializer):
    ratings = serializers.IntegerField(source="rating_count", help_text="Answers with a star rating.")
    satisfaction = serializers.FloatField(allow_null=True, help_text="4–5★ ratings out of all ratings, 0 to 1.")


class TeammateWeekSerializer(serializers.Serializer):
    week = serializers.DateField(source="starts", help_text="The week's Monday.")
    ratings = serializers.IntegerField()
    satisfied = serializers.IntegerField(help_text="Ratings of 4 or 5 stars.")
    satisfaction = serializers.FloatField(allow_null=True, help_text="satisfied / ratings, 0 to 1; null: none.")


class TeammateCountsSerializer(serializers.Serializer):
    requests = serializers.IntegerField(source="requested", help_text="Survey requests Stella recorded.")
    delivered = serializers.IntegerField(help_text="Surveys Stella sent that didn't bounce for good.")
    responded = serializers.IntegerField(help_text="Answered by the customer.")
    ratings = serializers.IntegerField(source="rating_count", help_text="Answers with a star rating.")
    response_rate = serializers.FloatField(
        allow_null=True, help_text="responded / delivered, 0 to 1 (4 decimals); null when none was delivered."
    )
    average_rating = serializers.FloatField(
        allow_null=True, help_text="The mean star rating, to one decimal; null when nobody rated."
    )
    satisfied = serializers.IntegerField(help_text="Ratings of 4 or 5 stars.")
    satisfaction = serializers.FloatField(
        allow_null=True, help_text="satisfied / ratings, 0 to 1 (4 decimals); null when nobody rated."
    )
    stars = serializers.ListField(
        child=serializers.IntegerField(), help_text="How many ratings of 1, 2, 3, 4 and 5 stars, in that order."
    )
    few_ratings = serializers.BooleanField(
        source="few", help_text=f"Fewer than {FEW_RESPONSES} ratings: too few to trust the share or the average."
    )
    previous = TeammatePreviousSerializer(help_text="The same over the days just before, as many.")
    change = serializers.FloatField(
        allow_null=True, help_text="satisfaction minus the previous period's (0.05: 5 points up); null: either none."
    )
    weeks = TeammateWeekSerializer(many=True, help_text="Each week (Monday to Sunday) the days touch.")


class TeammateRowSerializer(TeammateCountsSerializer):
    teammate = serializers.CharField(
        help_text="The Stella employee's email, else their custom id; empty when Stella named nobody or the "
        "rows are grouped by team or channel."
    )
    teammate_name = serializers.CharField(help_text="The employee's name as Stella gives it.")
    team = serializers.CharField(help_text="The teammate's team leader in Stella; empty when not known.")
    channel = serializers.CharField(help_text="In Stella's words: chat, email…; empty unless grouped by channel.")

    def get_fields(self) -> dict[str, serializers.Field]:
        """Who and which channel first, then the counts."""
        fields = super().get_fields()
        first = ["teammate", "teammate_name", "team", "channel"]
        return {name: fields[name] for name in [*first, *(name for name in fields if name not in first)]}


class TeammatesSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    previous_from = serializers.DateField(help_text="The days compared against: just before, as many.")
    previous_to = serializers.DateField()
    group = serializers.CharField(help_text="What each row is: teammate, team or channel.")
    results = TeammateRowSerializer(many=True, source="rows", help_text="In the order asked for (sort).")
    totals = TeammateCountsSerializer()


REPORT_PARAMETERS = [
    OpenApiParameter("group", str, enum=list(GROUPS), description="A row per teammate (the default), team or channel."),
    OpenApiParameter("bots", str, enum=["1"], description="1: count bots mapped to a Stella employee too."),
    OpenApiParameter(
        "sort",
        str,
        enum=[f"{way}{name}" for name in SORTS for way in ("", "-")],
        description=f"The column to sort by, '-' first for highest first (default {DEFAULT_SORT}).",
    ),
]


class TeammatesApiView(APIView):
    """The satisfaction report as JSON: per teammate (team, channel) over the chosen days, the surveys Stella
    recorded, sent and had answered, the share of 4–5★ ratings and the spread of the stars, each week's share, and
    the change against the days before (from Stella's feedback records, read every 15 minutes); only your
    accounts."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        timezone.activate(timezone.get_default_timezone())

    @extend_schema(
        parameters=[parameter for parameter in FILTERS if parameter.name in TEAMMATE_FILTERS] + REPORT_PARAMETERS,
        responses=TeammatesSerializer,
    )
    def get(self, request: Request) -> Response:
        accounts = accounts_visible_to(request.user)
        params = {name: request.query_params[name] for name in TEAMMATE_FILTERS if name in request.query_params}
        form = StatusFilterForm(params, accounts=accounts)
        if not form.is_valid():
            raise_form_errors(form)
        group = request.query_params.get("group", "teammate")
        if group not in GROUPS:
            raise ValidationError({"group": [f"No grouping “{group}”: teammate, team or channel."]})
        status_filter = StatusFilter.from_form(form, accounts=accounts)
        stats = teammate_stats(
            status_filter,
            group=group,
            bots=request.query_params.get("bots") == "1",
            sort=request.query_params.get("sort", ""),
        )
        data = {
            "date_from": status_filter.date_from,
            "date_to": status_filter.date_to,
            "previous_from": stats.previous_from,
            "previous_to": stats.previous_to,
            "group": stats.group,
            "rows": stats.rows,
            "totals": stats.totals,
        }
        return Response(TeammatesSerializer(data).data)
