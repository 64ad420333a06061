"""The message log (``message_logs``): one row per status event of a message; and the
recorder's cursors, how far it has read each stream (``message_log_cursors``)."""

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
    # W3C trace context of the message, kept so that a replay continues its trace.
    traceparent = models.CharField(max_length=55, null=True, blank=True)

    class Meta:
        db_table = "message_logs"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The seed's (sender, created_at DESC), ascending: a backward scan gives the newest
            # first all the same, and the recorder's inserts land at the right end of a range,
            # which costs PostgreSQL less a row (docs/measurements.md).
            models.Index(fields=["sender", "created_at"], name="idx_messages_sender"),
            models.Index(fields=["receiver", "created_at"], name="idx_messages_receiver"),
            # Partial: most messages carry no correlation id, and the recorder should not pay
            # for indexing them.
            models.Index(
                fields=["correlation_id", "created_at"],
                name="idx_messages_correlation",
                condition=models.Q(correlation_id__isnull=False),
            ),
            # Exact search only: on PostgreSQL a hash index (migration 0006), which costs the
            # recorder half what a B-tree of random ids does.
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


class RecorderCursor(models.Model):
    """How far the recorder has read one stream (``last_id``, a stream entry id).

    The cursor advances in the transaction that writes the rows read up to it, so a recorder
    that dies between reading and committing reads the same entries again and adds each row
    exactly once. Several recorders share the streams by locking cursor rows (SKIP LOCKED).
    The recorder reads with XREAD, not in a consumer group: a group on an agent's inbox could be
    acknowledged, claimed or read by that agent, who could then hide messages from the log.
    """

    stream = models.CharField(max_length=200, primary_key=True)
    last_id = models.CharField(max_length=41, default="0-0")
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "message_log_cursors"

    def __str__(self) -> str:
        return f"{self.stream} @ {self.last_id}"
