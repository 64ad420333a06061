"""WSGI entry point, for tools that want one; the site is served over ASGI."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "foundation_site.settings")
application = get_wsgi_application()
