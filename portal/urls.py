from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from integrations.views import intercom_webhook
from portal.views import healthz, metrics, readyz
from surveys.accounts.oauth import intercom_oauth_callback
from surveys.inbox_app.views import canvas_initialize, canvas_submit
from surveys.reporting.api import ApiRequestViewSet, SurveyRequestViewSet, TeammatesApiView
from surveys.reporting.teammate_views import TeammateResponsesView, TeammatesView
from surveys.reporting.views import StatusExportView, StatusPageView, TeammatesExportView, TimeZoneView

# No stock "Api Root" page (no way back to the portal from it): /api/ is the API's docs.
api = DefaultRouter(trailing_slash=True)
api.include_root_view = False
api.register("survey-requests", SurveyRequestViewSet, basename="survey-request")
api.register("api-requests", ApiRequestViewSet, basename="api-request")

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="status")),
    # Accounts, teammates and conversation events moved from the integrations app to surveys: old bookmarks still work.
    re_path(
        r"^admin/integrations/(?P<rest>(account|teammate|conversationevent)/.*)$",
        RedirectView.as_view(url="/admin/surveys/%(rest)s", query_string=True, permanent=True),
    ),
    path("admin/", admin.site.urls),
    path("webhooks/intercom/", intercom_webhook, name="intercom_webhook"),
    path("intercom/oauth/callback/", intercom_oauth_callback, name="intercom_oauth_callback"),
    # The inbox app's Canvas Kit endpoints (README, "Inside Intercom: the inbox app").
    path("intercom/canvas/initialize/", canvas_initialize, name="intercom_canvas_initialize"),
    path("intercom/canvas/submit/", canvas_submit, name="intercom_canvas_submit"),
    path("healthz", healthz, name="healthz"),
    # For operators (README, "Operating the portal"): readiness, and Prometheus's figures behind METRICS_TOKEN.
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("status/", StatusPageView.as_view(), name="status"),
    path("status/export.csv", StatusExportView.as_view(), name="status_export"),
    path("status/teammates/", TeammatesView.as_view(), name="status_teammates"),
    path("status/teammates.csv", TeammatesExportView.as_view(), name="status_teammates_export"),
    path("status/teammates/responses/", TeammateResponsesView.as_view(), name="status_teammate_responses"),
    path("status/time-zone/", TimeZoneView.as_view(), name="status_time_zone"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from the portal's own static files; signed out, the login page first (as for the status page). The
    # split view serves its start-up script from ?script, not inline, and portal/swagger_ui.html its styles from
    # static/: the Content-Security-Policy allows no inline script or style.
    path(
        "api/docs/",
        login_required(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="portal/swagger_ui.html")
        ),
        name="api-docs",
    ),
    # One answer (the figures and their totals), not a list of rows: beside the router's lists, not in it.
    path("api/teammates/", TeammatesApiView.as_view(), name="api-teammates"),
    path("api/", RedirectView.as_view(pattern_name="api-docs"), name="api-root"),
    path("api/", include(api.urls)),
    path("favicon.ico", RedirectView.as_view(url=settings.STATIC_URL + "portal/favicon.svg", permanent=True)),
]

if settings.SANDBOX:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
