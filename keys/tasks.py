"""Celery tasks of the keys app (beat runs them: tokenbyte/settings.py CELERY_BEAT_SCHEDULE)."""

from celery import shared_task
from django.utils import timezone

from keys.alerts import spend_alerts_send


@shared_task(name="keys.spend_alerts", ignore_result=True)
def spend_alerts() -> int:
    """E-mail the budget and low-balance alerts that are due (each once per window)."""
    return spend_alerts_send(now=timezone.now())
