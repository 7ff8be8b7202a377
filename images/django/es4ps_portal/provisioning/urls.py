from django.urls import path

from . import views

app_name = "provisioning"

urlpatterns = [
    path("status/", views.status, name="status"),
    path("status.json", views.status_json, name="status-json"),
]
