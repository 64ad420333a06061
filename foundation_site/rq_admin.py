"""RQ's dashboard, for superusers only, every change it makes audited.

django-rq lets any staff user empty a queue, delete or requeue jobs, or stop one, including the
scheduled rotation; none of it reached the audit log. Here every dashboard view needs an active
superuser (others get 403, audited), and every POST (each of its actions is one) is audited
with the view's name and the ids it was given: jobs carry ids, never values.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, reverse
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from audit_app import services as audit

View = Callable[..., HttpResponse]


def superusers_only(view: View) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        name = request.resolver_match.url_name if request.resolver_match else view.__name__
        if not (user.is_active and user.is_superuser):
            audit.record(
                "admin.rq",
                user,
                f"rq:{name}",
                request.method.lower() if request.method else None,
                success=False,
                request=request,
                error="the RQ dashboard is for superusers",
            )
            raise PermissionDenied
        response = view(request, *args, **kwargs)
        if request.method == "POST":
            given: dict[str, Any] = {
                key: request.POST.getlist(key)
                for key in request.POST
                if key != "csrfmiddlewaretoken"
            }
            audit.record(
                "admin.rq",
                user,
                f"rq:{name}",
                name,
                success=response.status_code < 400,
                request=request,
                **kwargs,
                **given,
            )
        return response

    return wrapped


def urlpatterns() -> list[URLPattern]:
    """django-rq's own patterns, its admin views wrapped (its token-checked stats stay)."""
    return get_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=superusers_only)
