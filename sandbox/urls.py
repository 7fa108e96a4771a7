from django.urls import path

from sandbox import views

urlpatterns = [
    path("stella/v1/requests", views.stella_requests, name="sandbox_stella_requests"),
    path("intercom/oauth", views.intercom_oauth, name="sandbox_intercom_oauth"),
    path("intercom/auth/eagle/token", views.intercom_token, name="sandbox_intercom_token"),
    path("intercom/me", views.intercom_me, name="sandbox_intercom_me"),
    path("intercom/<str:kind>/<str:intercom_id>", views.intercom_record, name="sandbox_intercom_record"),
]
