"""The message log (``message_logs``): one row per status event of a message."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now


class MessageLog(models.Model):
    class Status(models.TextChoices):
        SENT = "sent"
        DELIVERED = "delivered"
        FAILED = "failed"
        DEAD = "dead"
        REPLAYED = "replayed"

    id = models.AutoField(primary_key=True)
    message_id = models.CharField(max_length=100, null=True, blank=True)
    sender = models.CharField(max_length=100, null=True, blank=True)
    receiver = models.CharField(max_length=100, null=True, blank=True)
    message_type = models.CharField(max_length=50, null=True, blank=True)
    payload = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=20, null=True, blank=True, choices=Status.choices)
    error_message = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    # Beyond the seed: the conversation view, and idempotent recording (the events-stream entry
    # a row came from; one entry can carry a batch of messages).
    correlation_id = models.CharField(max_length=100, null=True, blank=True)
    attempt = models.IntegerField(null=True, blank=True)
    event_id = models.CharField(max_length=40, null=True, blank=True)

    class Meta:
        db_table = "message_logs"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["sender", "-created_at"], name="idx_messages_sender"),
            models.Index(fields=["receiver", "-created_at"], name="idx_messages_receiver"),
            # Partial: most messages carry no correlation id, and the recorder should not pay
            # for indexing them.
            models.Index(
                fields=["correlation_id", "created_at"],
                name="idx_messages_correlation",
                condition=models.Q(correlation_id__isnull=False),
            ),
        ]
        constraints = [
            # message_id first: the same index serves look-ups by message id.
            models.UniqueConstraint(
                fields=["message_id", "event_id"], name="uniq_message_log_event"
            ),
        ]
        permissions = [("replay_messages", "Can replay dead letters and message history")]

    def __str__(self) -> str:
        return f"{self.message_id} {self.sender}→{self.receiver} {self.status}"
