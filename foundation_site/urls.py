"""Root URLs: the admin (where admins work), RQ's dashboard (superusers) and a health probe."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from foundation_site import rq_admin, views
from foundation_site.api import api
from foundation_site.forms import LockoutAwareLoginForm

admin.site.site_header = "Foundation"
admin.site.site_title = "Foundation admin"
admin.site.index_title = "Secrets, messaging, telemetry, configuration and audit"
admin.site.login_form = LockoutAwareLoginForm

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", api.urls),
    # Superusers only, and audited (foundation_site/rq_admin.py).
    path("admin/rq/", include((rq_admin.urlpatterns(), "django_rq"))),
    path("admin/", admin.site.urls),
]
