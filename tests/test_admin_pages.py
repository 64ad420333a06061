"""The admin's own pages (``foundation_core.admin_pages``): named in Django's form, rendered by one
helper, with one set of breadcrumbs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, reverse

from secrets_app import services as secrets

pytestmark = pytest.mark.django_db

BREADCRUMBS = "admin/custom_page.html"


def ours(app_path: str) -> bool:
    """Whether an app is this project's (django_rq's dashboard names its URLs its own way)."""
    path = Path(app_path)
    return path.is_relative_to(settings.BASE_DIR) and "site-packages" not in path.parts


def admin_url_names() -> list[tuple[str, str, str]]:
    """(app_label, model_name, URL name) for every named URL our ModelAdmins have."""
    names = []
    for model in apps.get_models():
        if not (admin.site.is_registered(model) and ours(model._meta.app_config.path)):
            continue
        model_admin = admin.site.get_model_admin(model)
        for pattern in model_admin.get_urls():
            assert isinstance(pattern, URLPattern)
            if pattern.name is not None:  # Django's catch-all redirect to the change page
                names.append((model._meta.app_label, model._meta.model_name or "", pattern.name))
    return names


def test_every_admin_url_is_named_app_model_action():
    names = admin_url_names()
    assert ("secrets_app", "secretmetadata", "secrets_app_secretmetadata_set_value") in names
    for app_label, model_name, name in names:
        assert re.fullmatch(rf"{app_label}_{model_name}_[a-z]+(_[a-z]+)*", name), name
    assert len({name for _, _, name in names}) == len(names), "a URL name is used twice"


def test_a_page_about_an_object_has_the_shared_breadcrumbs(admin_client, admin_user):
    secret = secrets.create_secret(
        "crumb_secret", "a-value", actor=admin_user, backend="local", provider="internal"
    )
    page = admin_client.get(reverse("admin:secrets_app_secretmetadata_versions", args=[secret.pk]))
    assert page.status_code == 200
    assert BREADCRUMBS in [t.name for t in page.templates]
    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', page.content.decode(), re.S)
    assert crumbs is not None
    links = re.findall(r'<a href="([^"]+)">', crumbs[1])
    assert links == [
        reverse("admin:index"),
        reverse("admin:app_list", args=["secrets_app"]),
        reverse("admin:secrets_app_secretmetadata_changelist"),
        reverse("admin:secrets_app_secretmetadata_change", args=[secret.pk]),
    ]
    assert crumbs[1].rstrip().endswith("&rsaquo; Versions")


def test_a_page_about_a_model_has_the_shared_breadcrumbs(admin_client):
    page = admin_client.get(reverse("admin:messaging_app_messagelog_replay_range"))
    assert page.status_code == 200
    assert BREADCRUMBS in [t.name for t in page.templates]
    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', page.content.decode(), re.S)
    assert crumbs is not None
    assert reverse("admin:messaging_app_messagelog_changelist") in crumbs[1]
    assert crumbs[1].rstrip().endswith("&rsaquo; Replay a time range")


def test_only_the_shared_page_template_draws_breadcrumbs():
    templates = Path(settings.BASE_DIR) / "templates"
    drawing = sorted(
        str(path.relative_to(templates))
        for path in templates.rglob("*.html")
        if "{% block breadcrumbs %}" in path.read_text()
    )
    assert drawing == [BREADCRUMBS]
