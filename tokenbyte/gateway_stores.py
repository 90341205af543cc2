"""The gateway's stores, filled from the apps: the one place where the gateway meets the
keys app's and the catalog's models (proxy/gateway/stores.py says why)."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing import holds, stored_responses
from billing.bodies import CapturedBodies
from billing.body_log import usage_bodies_store
from billing.events import UsageEvent
from billing.reservations import RecordedBatch
from billing.retention import (
    BATCH_SIZE,
    stored_responses_prune,
    usage_bodies_prune,
    usage_records_prune,
)
from billing.selectors import MoneySnapshot, generation_get, money_snapshot
from billing.services import (
    usage_events_fold,
    usage_events_left,
    usage_events_record,
    usage_events_write,
)
from keys import cache as key_cache
from keys.services import key_last_used_record
from proxy.gateway.stores import (
    BodyStore,
    CatalogStore,
    GatewayStores,
    Generation,
    GenerationStore,
    HoldStore,
    KeyStore,
    MoneyStore,
    ResponseStore,
    StoredContext,
)
from proxy.routing_version import routing_version_get
from proxy.selectors import load_routing_table


def _record_last_used(used: Mapping[int, datetime]) -> int:
    return key_last_used_record(used=used)


def _money_snapshot(account_id: int, key_id: int, window: str | None) -> MoneySnapshot:
    return money_snapshot(account_id=account_id, key_id=key_id, window=window)


def _usage_record(events: Sequence[UsageEvent]) -> RecordedBatch:
    return usage_events_record(events=events)


def _hold_take(
    hold_id: str,
    account_id: int,
    key_id: int,
    budget: Decimal | None,
    window: str | None,
    amount: Decimal,
    postpaid: bool,
    now: datetime,
    seconds: int,
) -> tuple[bool, Decimal, Decimal | None]:
    return holds.holds_take(
        hold_id=hold_id,
        account_id=account_id,
        key_id=key_id,
        budget=budget,
        window=window,
        amount=amount,
        postpaid=postpaid,
        now=now,
        seconds=seconds,
    )


def _usage_write(events: Sequence[UsageEvent]) -> None:
    usage_events_write(events=events)


def _usage_fold(events: Sequence[UsageEvent]) -> RecordedBatch:
    return usage_events_fold(events=events)


def _usage_left(written_before: datetime, limit: int) -> list[UsageEvent]:
    return usage_events_left(written_before=written_before, limit=limit)


def _hold_release(hold_ids: list[str]) -> int:
    return holds.holds_release(hold_ids=hold_ids)


def _hold_renew(hold_ids: list[str], now: datetime, seconds: int) -> int:
    return holds.holds_renew(hold_ids=hold_ids, now=now, seconds=seconds)


def _generation_get(account_id: int, generation_id: str) -> Generation | None:
    record = generation_get(account_id=account_id, generation_id=generation_id)
    if record is None:
        return None
    return Generation(
        event_id=record.event_id,
        request_id=record.request_id,
        response_id=record.response_id,
        endpoint=record.endpoint,
        model=record.model,
        provider=record.provider,
        status=record.status,
        error_code=record.error_code,
        stream=record.stream,
        client_disconnected=record.client_disconnected,
        uncached_input_tokens=record.uncached_input_tokens,
        cache_read_tokens=record.cache_read_tokens,
        cache_write_tokens=record.cache_write_tokens,
        output_tokens=record.output_tokens,
        reasoning_tokens=record.reasoning_tokens,
        cache_write_1h_tokens=record.cache_write_1h_tokens,
        estimated=record.estimated,
        service_tier=record.service_tier,
        server_tool_calls=dict(record.server_tool_calls or {}),
        cost=record.cost,
        charged=record.charged,
        started_at=record.started_at,
        latency_us=record.latency_us,
        ttfb_us=record.ttfb_us,
        attempts=record.attempts,
        upstream_request_id=record.upstream_request_id,
    )


def _bodies_store(bodies: Sequence[CapturedBodies]) -> int:
    return usage_bodies_store(bodies=bodies)


def _records_prune() -> tuple[int, int]:
    days = settings.TOKENBYTE_USAGE_RETENTION_DAYS
    return usage_records_prune(now=timezone.now(), days=days, max_batches=1), BATCH_SIZE


def _bodies_prune() -> int:
    """Embedded mode's hourly retention of what is not money: bodies, and stored responses."""
    now = timezone.now()
    bodies = usage_bodies_prune(now=now, days=settings.TOKENBYTE_BODY_RETENTION_DAYS)
    days = settings.TOKENBYTE_RESPONSE_RETENTION_DAYS
    return bodies + stored_responses_prune(now=now, days=days)


def _response_save(
    account_id: int,
    key_id: int,
    response: dict[str, Any],
    input_items: list[dict[str, Any]],
    chain: list[str],
) -> None:
    stored_responses.stored_response_save(
        account_id=account_id,
        key_id=key_id,
        response=response,
        input_items=input_items,
        chain=chain,
        created_at=timezone.now(),
    )


def _response_context(account_id: int, response_id: str) -> StoredContext | None:
    return stored_responses.stored_response_context(account_id=account_id, response_id=response_id)


def _response_items(account_id: int, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    return stored_responses.stored_items_find(account_id=account_id, item_ids=item_ids)


def _response_get(account_id: int, response_id: str) -> tuple[str, list[dict[str, Any]]] | None:
    return stored_responses.stored_response_get(account_id=account_id, response_id=response_id)


def _response_input_items(account_id: int, response_id: str) -> list[dict[str, Any]] | None:
    return stored_responses.stored_response_input_items(
        account_id=account_id, response_id=response_id
    )


def _response_delete(account_id: int, response_id: str) -> bool:
    return stored_responses.stored_response_delete(account_id=account_id, response_id=response_id)


def gateway_stores() -> GatewayStores:
    return GatewayStores(
        keys=KeyStore(
            lookup=key_cache.key_cache_lookup,
            changes_latest=key_cache.key_changes_latest,
            changes_after=key_cache.key_changes_after,
            record_last_used=_record_last_used,
            changed=key_cache.key_changed,
            redis_key=key_cache.policy_redis_key,
            channel=key_cache.changes_channel,
            redis_ttl_seconds=key_cache.REDIS_TTL_SECONDS,
            redis_negative_ttl_seconds=key_cache.REDIS_NEGATIVE_TTL_SECONDS,
            change_retention_seconds=key_cache.KEY_CHANGE_RETENTION.total_seconds(),
            unknown_key_message=key_cache.UNKNOWN_KEY_MESSAGE,
        ),
        catalog=CatalogStore(version=routing_version_get, load=load_routing_table),
        money=MoneyStore(
            snapshot=_money_snapshot,
            record=_usage_record,
            holds=HoldStore(take=_hold_take, release=_hold_release, renew=_hold_renew),
            write=_usage_write,
            fold=_usage_fold,
            left=_usage_left,
            prune=_records_prune,
        ),
        generations=GenerationStore(get=_generation_get),
        bodies=BodyStore(store=_bodies_store, prune=_bodies_prune),
        responses=ResponseStore(
            save=_response_save,
            context=_response_context,
            items=_response_items,
            get=_response_get,
            input_items=_response_input_items,
            delete=_response_delete,
        ),
    )
