"""A counter in the shared cache that gateway processes poll to know when to reload routing.

With REDIS_URL it is shared by every process; in embedded mode the console and the gateway
live in one process and share the in-process cache.
"""

from django.core.cache import cache

ROUTING_VERSION_KEY = "proxy:routing-version"


def routing_version_bump() -> None:
    try:
        cache.incr(ROUTING_VERSION_KEY)
    except ValueError:  # missing key: start the counter
        cache.add(ROUTING_VERSION_KEY, 1, timeout=None)
        cache.incr(ROUTING_VERSION_KEY)


def routing_version_get() -> int:
    return int(cache.get(ROUTING_VERSION_KEY) or 0)
