"""Stored responses (POST /v1/responses with `store` on, to cards the gateway translates): what a
later request continues from by `previous_response_id` or points at by `item_reference`, and
what GET /v1/responses/{id} returns. Owned by the account whose key made them; kept
TOKENBYTE_RESPONSE_RETENTION_DAYS (billing/retention.py). The services are
billing/stored_responses.py."""

from django.conf import settings
from django.db import models


class StoredResponse(models.Model):
    """One response object, without its output (its items, below). `chain` is the ids of the
    responses it continues, oldest first, its previous one last: a continuation reads its whole
    context in two queries, whatever the conversation's length."""

    response_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stored_responses"
    )
    key_id = models.BigIntegerField()  # the key that made it (no foreign key: keys are not ours)
    created_at = models.DateTimeField()
    model = models.CharField(max_length=200)  # the card's title, as the response says
    previous_response_id = models.CharField(max_length=64, blank=True, default="")
    chain = models.JSONField(default=list)
    # The response object as its client got it, `output` aside, as JSON text: its usage's cost
    # is an exact decimal number, which a JSONField would round through a float.
    response = models.TextField()

    class Meta:
        indexes = (
            # Retention deletes the oldest first (billing/retention.py).
            models.Index(fields=("created_at",), name="stored_response_by_created"),
        )

    def __str__(self) -> str:
        return self.response_id


class StoredResponseItem(models.Model):
    """One item of a stored response: of its input (as this request sent it, item references
    resolved) or of its output (with the provider's signed reasoning, which a continuation
    sends back, whether or not its client asked to see it)."""

    response = models.ForeignKey(StoredResponse, on_delete=models.CASCADE, related_name="items")
    output = models.BooleanField()  # False: an input item
    position = models.PositiveIntegerField()
    item_id = models.CharField(max_length=64, blank=True, default="")
    item = models.JSONField()

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("response", "output", "position"), name="stored_item_unique_position"
            ),
        )
        indexes = (models.Index(fields=("item_id",), name="stored_item_by_item_id"),)

    def __str__(self) -> str:
        return self.item_id or f"item {self.position} of {self.response_id}"
