from django.urls import path

from sandbox import views

urlpatterns = [
    path("stella/v1/requests", views.stella_requests, name="sandbox_stella_requests"),
    path("intercom/<str:kind>/<str:intercom_id>", views.intercom_record, name="sandbox_intercom_record"),
]
