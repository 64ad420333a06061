"""The admin's log-in form, which says when a lock-out refused it."""

from __future__ import annotations

import math

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError


class LockoutAwareLoginForm(AdminAuthenticationForm):
    def clean(self) -> dict[str, object]:
        try:
            return super().clean()
        except ValidationError:
            locked = getattr(self.request, "_login_locked", None)
            if locked is None:
                raise
            minutes = max(1, math.ceil(locked[2] / 60))
            raise ValidationError(
                f"Too many failed log-ins: try again in {minutes} minute(s), or ask an "
                "administrator to unlock it.",
                code="locked",
            ) from None
