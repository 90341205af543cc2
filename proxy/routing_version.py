"""The routing version: a counter row that gateway processes poll to know when to reload routing.

It lives in the database, not the cache: a change made by any process (the CLI in a second
terminal, the admin, another host) moves it for every gateway, embedded mode included, where the
cache is each process's own. It is bumped inside the writer's transaction, so it moves exactly
when the change commits. Gateways read it on a thread of their own, never on a request.
"""

from django.db import IntegrityError, transaction
from django.db.models import F

from proxy.models import RoutingVersion

ROW = 1


def routing_version_bump() -> None:
    if RoutingVersion.objects.filter(pk=ROW).update(version=F("version") + 1):
        return
    # The migration creates the row; a flushed (test) database lacks it.
    try:
        with transaction.atomic():
            RoutingVersion.objects.create(pk=ROW, version=1)
    except IntegrityError:  # another writer created it meanwhile
        RoutingVersion.objects.filter(pk=ROW).update(version=F("version") + 1)


def routing_version_get() -> int:
    version = RoutingVersion.objects.filter(pk=ROW).values_list("version", flat=True).first()
    return version or 0
