"""Stored bodies (body logging): one row per call of an account that keeps them, apart from its
lean usage record, which it names by event id (billing/bodies.py says what is kept; retention
of its own: TOKENBYTE_BODY_RETENTION_DAYS, billing/retention.py)."""

from django.conf import settings
from django.db import models


class UsageBody(models.Model):
    """A call's request and response bodies, as its client sent and received them, each cut at
    TOKENBYTE_BODY_LOG_MAX_BYTES. `event_id` is its usage record's (no foreign key: either may
    be written first, and records and bodies are deleted on their own schedules)."""

    event_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_bodies"
    )
    created_at = models.DateTimeField()  # the call's start, as its record's started_at
    status = models.PositiveSmallIntegerField(default=0)  # what the client was sent; 0: none
    request_text = models.TextField(blank=True, default="")
    request_bytes = models.BigIntegerField(default=0)  # the whole body's size
    request_truncated = models.BooleanField(default=False)
    response_text = models.TextField(blank=True, default="")
    response_bytes = models.BigIntegerField(default=0)
    response_truncated = models.BooleanField(default=False)

    class Meta:
        indexes = (
            # Retention deletes the oldest first (billing/retention.py usage_bodies_prune).
            models.Index(fields=("created_at",), name="usage_body_by_created"),
        )

    def __str__(self) -> str:
        return f"bodies of {self.event_id}"
