"""Root URLs: the admin (where admins work), RQ's dashboard and a health probe."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from foundation_site import views
from foundation_site.api import api

admin.site.site_header = "Foundation"
admin.site.site_title = "Foundation admin"
admin.site.index_title = "Secrets, messaging, telemetry, configuration and audit"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
