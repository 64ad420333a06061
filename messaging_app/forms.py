from __future__ import annotations

from django import forms


class ReplayRangeForm(forms.Form):
    receiver = forms.CharField(max_length=100, help_text="The agent whose messages to send again.")
    start = forms.DateTimeField(help_text="UTC, e.g. 2026-11-26 10:00")
    end = forms.DateTimeField(help_text="UTC, exclusive")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            raise forms.ValidationError("The end must be after the start.")
        return data
