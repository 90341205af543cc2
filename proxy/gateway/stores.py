"""What the gateway reads and writes of the Django apps, handed in at start.

The gateway imports no app's models: the composition root (tokenbyte/gateway_stores.py) fills
these with the keys app's and the catalog's own functions, and the runtime takes them. The
functions are synchronous (ORM calls); the gateway runs them on its database threads.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from billing.bodies import CapturedBodies
from billing.events import UsageEvent
from billing.reservations import RecordedBatch
from proxy.gateway.routing import RoutingTable


class ChangeSignal(Protocol):
    """A signal fired in this process when keys change (a django.dispatch.Signal)."""

    def connect(self, receiver: Callable[..., Any], *, weak: bool, dispatch_uid: str) -> None: ...

    def disconnect(self, *, dispatch_uid: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class KeyStore:
    """The keys app's side of the key cache (keys/cache.py, keys/services.py)."""

    lookup: Callable[[str], dict[str, Any]]  # digest -> cache entry
    changes_latest: Callable[[], int]
    changes_after: Callable[[int], tuple[int, list[str]]]
    record_last_used: Callable[[Mapping[int, datetime]], int]
    changed: ChangeSignal
    redis_key: Callable[[str], str]  # digest -> the entry's Redis key
    channel: Callable[[int], str]  # Redis db -> the invalidation channel
    redis_ttl_seconds: int
    redis_negative_ttl_seconds: int
    change_retention_seconds: float
    unknown_key_message: str


@dataclass(frozen=True, slots=True)
class CatalogStore:
    """The catalog app's side of the routing snapshot (proxy/selectors.py)."""

    version: Callable[[], int]
    load: Callable[[int], RoutingTable]


class Snapshot(Protocol):
    """billing.selectors.MoneySnapshot."""

    @property
    def balance(self) -> Decimal: ...
    @property
    def credit_limit(self) -> Decimal: ...
    @property
    def version(self) -> int: ...
    @property
    def spent(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class HoldStore:
    """Holds in the database, shared by the gateways while Redis is away (billing/holds.py)."""

    # hold id, account id, key id, budget, window, amount, postpaid, now, seconds ->
    # (held, balance left for the call, budget left or None)
    take: Callable[
        [str, int, int, Decimal | None, str | None, Decimal, bool, datetime, int],
        tuple[bool, Decimal, Decimal | None],
    ]
    release: Callable[[list[str]], int]
    renew: Callable[[list[str], datetime, int], int]  # hold ids, now, seconds


@dataclass(frozen=True, slots=True)
class MoneyStore:
    """Billing's side of reservations (billing/selectors.py money_snapshot)."""

    # (account id, key id, budget window or None) -> balance, credit limit, version, spend
    snapshot: Callable[[int, int, str | None], Snapshot]
    # Embedded mode's recorder: usage events -> what recording them changed, in one
    # transaction (billing.services.usage_events_record).
    record: Callable[[Sequence[UsageEvent]], RecordedBatch]
    holds: HoldStore
    # The recorder's two steps (billing.services usage_events_write / _fold / _left): write
    # events durably, then record them in larger batches; and what a stopped process left.
    write: Callable[[Sequence[UsageEvent]], None]
    fold: Callable[[Sequence[UsageEvent]], RecordedBatch]
    left: Callable[[datetime, int], list[UsageEvent]]
    # Retention in embedded mode: one batch of old records deleted -> (deleted, batch size).
    prune: Callable[[], tuple[int, int]] = lambda: (0, 1)


@dataclass(frozen=True, slots=True)
class Generation:
    """One recorded call, as GET /v1/generation tells it: billing's usage record (billing.models
    UsageRecord), copied out of the ORM on the database thread."""

    event_id: str
    request_id: str
    response_id: str  # "" when the answer had no `id`
    endpoint: str
    model: str
    provider: str
    status: int
    error_code: str
    stream: bool
    client_disconnected: bool
    uncached_input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_write_1h_tokens: int
    estimated: bool
    service_tier: str
    server_tool_calls: Mapping[str, int]
    cost: Decimal
    charged: Decimal
    started_at: datetime
    latency_us: int
    ttfb_us: int | None
    attempts: int
    upstream_request_id: str


@dataclass(frozen=True, slots=True)
class GenerationStore:
    """Billing's side of GET /v1/generation (billing/selectors.py generation_get)."""

    # (account id, an event id or an answer's `id`) -> that account's call, or None
    get: Callable[[int, str], Generation | None]


@dataclass(frozen=True, slots=True)
class BodyStore:
    """Billing's side of body logging (billing/body_log.py, billing/retention.py)."""

    store: Callable[[Sequence[CapturedBodies]], int]  # calls' bodies -> how many stored
    prune: Callable[[], int]  # delete those past their retention (embedded mode's beat)


def _no_bodies(bodies: Sequence[CapturedBodies]) -> int:
    return 0


def _no_pruning() -> int:
    return 0


# (ids of the responses a continuation continues, oldest first; their items in order)
StoredContext = tuple[list[str], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ResponseStore:
    """Billing's side of stored responses (billing/stored_responses.py); all by account id."""

    # account, key, the response object, the input items it was made from, the chain it ends
    save: Callable[[int, int, dict[str, Any], list[dict[str, Any]], list[str]], None]
    context: Callable[[int, str], StoredContext | None]  # a response id -> its context
    items: Callable[[int, list[str]], dict[str, dict[str, Any]]]  # item ids -> stored items
    # a response id -> (the response object without `output`, as JSON text; its output items)
    get: Callable[[int, str], tuple[str, list[dict[str, Any]]] | None]
    input_items: Callable[[int, str], list[dict[str, Any]] | None]
    delete: Callable[[int, str], bool]


def _none(*args: Any) -> None:
    return None


def _nothing_saved(*args: Any) -> None:
    raise RuntimeError("no response store")


NO_RESPONSES = ResponseStore(
    save=_nothing_saved,
    context=_none,
    items=lambda account_id, item_ids: {},
    get=_none,
    input_items=_none,
    delete=lambda account_id, response_id: False,
)


@dataclass(frozen=True, slots=True)
class GatewayStores:
    keys: KeyStore
    catalog: CatalogStore
    money: MoneyStore
    generations: GenerationStore
    bodies: BodyStore = BodyStore(store=_no_bodies, prune=_no_pruning)
    responses: ResponseStore = NO_RESPONSES
