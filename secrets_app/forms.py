"""Admin forms. A secret value is a write-only field: rendered empty, never echoed back."""

from __future__ import annotations

from django import forms
from django.conf import settings

from secrets_app.models import Backend, validate_secret_name


class SecretValueField(forms.CharField):
    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("strip", False)
        kwargs.setdefault(
            "help_text", "Write-only: it is stored in the backend and never shown again."
        )
        super().__init__(**kwargs)  # type: ignore[arg-type]


class SecretCreateForm(forms.Form):
    secret_name = forms.CharField(max_length=100, validators=[validate_secret_name])
    value = SecretValueField()
    storage_backend = forms.ChoiceField(choices=Backend.choices)
    provider = forms.CharField(
        max_length=50,
        required=False,
        help_text="openai, postgres, ...; 'internal' for a password the foundation owns and "
        "rotates itself. Only providers with a rotator (SECRETS_ROTATORS) rotate; the others "
        "are shown due when their policy says so.",
    )
    rotation_policy_days = forms.IntegerField(
        min_value=0, required=False, initial=90, help_text="Empty or 0: never rotate automatically."
    )
    description = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["storage_backend"].initial = settings.SECRETS_DEFAULT_BACKEND


class SetValueForm(forms.Form):
    value = SecretValueField(label="New value")
