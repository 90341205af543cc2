"""Tell every gateway process that the routing table (cards, credentials) changed."""

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from proxy.models import ModelCard, UpstreamCredential
from proxy.routing_version import routing_version_bump


@receiver(post_save, sender=ModelCard)
@receiver(post_delete, sender=ModelCard)
@receiver(post_save, sender=UpstreamCredential)
@receiver(post_delete, sender=UpstreamCredential)
@receiver(m2m_changed, sender=ModelCard.credentials.through)
def _routing_changed(**kwargs: Any) -> None:
    # In the writer's transaction: the version moves exactly when the change commits.
    routing_version_bump()
