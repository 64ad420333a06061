"""The message log (``message_logs``): one row per status event of a message; and the
recorder's ledger of the events-stream entries it has written (``message_log_events``)."""

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

    # BIGINT, unlike the seed's SERIAL: at the recorder's rate (tens of thousands of rows a
    # second under load) a 32-bit sequence runs out within days. See docs/messaging.md.
    id = models.BigAutoField(primary_key=True)
    message_id = models.CharField(max_length=100, null=True, blank=True)
    sender = models.CharField(max_length=100, null=True, blank=True)
    receiver = models.CharField(max_length=100, null=True, blank=True)
    message_type = models.CharField(max_length=50, null=True, blank=True)
    payload = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=20, null=True, blank=True, choices=Status.choices)
    error_message = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    # Beyond the seed: the conversation view, and the events-stream entry a row came from (one
    # entry can carry a batch of messages).
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
            models.Index(fields=["message_id"], name="idx_messages_message_id"),
            # The admin at scale (docs/messaging.md, "The message log at scale"): the default
            # ordering, time filters and retention; the type filter; and the status filter for
            # the rare statuses (the common ones are dense enough that walking the time index
            # finds a page at once, and the recorder need not index two rows a message).
            # Ascending, read backwards for the newest first: new rows then land at the right
            # end of their range, where PostgreSQL's page splits leave full pages; at the left
            # end (DESC) these cost the recorder a third more.
            models.Index(fields=["created_at", "id"], name="idx_messages_created"),
            models.Index(fields=["message_type", "created_at", "id"], name="idx_messages_type"),
            models.Index(
                fields=["status", "created_at", "id"],
                name="idx_messages_status",
                condition=~models.Q(status__in=["sent", "delivered"]),
            ),
        ]
        permissions = [("replay_messages", "Can replay dead letters and message history")]

    def __str__(self) -> str:
        return f"{self.message_id} {self.sender}→{self.receiver} {self.status}"


class RecordedEvent(models.Model):
    """An events-stream entry whose rows are committed: what makes recording idempotent.

    The recorder adds these in the transaction that writes the rows, and skips an entry already
    here, so a batch delivered twice (its recorder died before acknowledging it) adds nothing.
    Rows can then be written by COPY, which has no ON CONFLICT; a unique index on the message log
    itself cost more than the rows. Only the entries the recorder group has not acknowledged are
    ever delivered again, so the ledger is pruned behind that point and stays small.
    """

    pk = models.CompositePrimaryKey("ms", "seq")
    ms = models.BigIntegerField()
    seq = models.BigIntegerField()

    class Meta:
        db_table = "message_log_events"

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"
