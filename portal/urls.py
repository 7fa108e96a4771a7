from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from integrations.views import intercom_webhook
from portal.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/intercom/", intercom_webhook, name="intercom_webhook"),
    path("healthz", healthz, name="healthz"),
]

if settings.SANDBOX:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
