"""Pages of a model's own in the admin (a secret's versions, the dead letters, an agent's new
credentials), all built one way.

``AdminPagesMixin`` gives a ``ModelAdmin`` the three things such a page needs, so that no admin
class repeats them:

- ``admin_page_path``: the URL pattern, behind ``admin_site.admin_view`` (staff only, CSRF,
  no caching) and named in Django's own form, ``<app_label>_<model_name>_<action>``, like the
  admin's ``secrets_app_secretmetadata_change``; templates reverse it with
  ``{% url opts|admin_urlname:'<action>' %}``, code with ``admin_url``.
- ``render_admin_page``: the context the admin's base templates expect (``each_context``,
  ``opts``, ``app_label``, ``title``, ``original``, ``has_view_permission``), and the template
  looked up the way Django looks up a model's change form: ``admin/<app>/<model>/<name>``,
  then ``admin/<app>/<name>``, then ``admin/<name>``.
- the breadcrumbs, Home > app > model list > object > page, drawn by the page's base template
  ``admin/custom_page.html``, the one every such page extends.

A view still checks its own permissions first: the helper only renders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

__all__ = ["AdminPagesMixin"]


class AdminPagesMixin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A ``ModelAdmin`` with pages of its own; see the module docstring."""

    def admin_url_name(self, action: str) -> str:
        """The URL name of one of this model's admin pages, without the ``admin:`` namespace."""
        return f"{self.opts.app_label}_{self.opts.model_name}_{action}"

    def admin_url(self, action: str, *args: Any) -> str:
        """The address of one of this model's admin pages, Django's own (``change``) included."""
        return reverse(
            f"admin:{self.admin_url_name(action)}",
            args=args,
            current_app=self.admin_site.name,
        )

    def admin_page_path(
        self, route: str, view: Callable[..., HttpResponse], action: str
    ) -> URLPattern:
        """A pattern for ``get_urls``, under this model's admin URL (``/admin/<app>/<model>/``)."""
        return path(route, self.admin_site.admin_view(view), name=self.admin_url_name(action))

    def render_admin_page(
        self,
        request: HttpRequest,
        template: str,
        *,
        title: str,
        original: Model | None = None,
        crumb: str | None = None,
        **context: Any,
    ) -> TemplateResponse:
        """Render ``template`` (a bare name, looked up for this model) as an admin page.

        ``original`` is the object the page is about, if any: the breadcrumbs then pass through
        it. ``crumb`` is the last breadcrumb when it should be shorter than ``title``.
        """
        opts = self.opts
        return TemplateResponse(
            request,
            [
                f"admin/{opts.app_label}/{opts.model_name}/{template}",
                f"admin/{opts.app_label}/{template}",
                f"admin/{template}",
            ],
            {
                **self.admin_site.each_context(request),
                "opts": opts,
                "app_label": opts.app_label,
                "title": title,
                "crumb": crumb or title,
                "original": original,
                "has_view_permission": self.has_view_permission(request, original),
                **context,
            },
        )
