"""/logs/: the account's requests, filtered and searched (billing/usage_search.py), one
request in full, and the filtered set exported as CSV or JSON lines. Here in the console shell
because the pages join billing's records with the keys' names and the catalog's prices."""

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.attempts import waterfall
from accounts.log_bodies import log_bodies_view
from accounts.models import User
from billing import usage_search
from billing.body_log import usage_bodies_exist
from billing.export import Echo, csv_cell, in_chunks
from billing.models import UsageRecord
from billing.pricing import cost_lines, price_text
from billing.usage import Usage
from billing.usage_search import UsageFilters
from keys.selectors import key_ids_named, key_menu
from proxy.selectors import card_prices
from tokenbyte.htmx import HtmxHttpRequest

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
RANGES["30d"] = timedelta(days=30)
STATUSES = (
    ("", "Any status"),
    ("ok", "Succeeded"),
    ("error", "Failed"),
    ("4xx", "4xx"),
    ("5xx", "5xx"),
    ("429", "429 (rate limited)"),
    ("402", "402 (payment required)"),
)
EXPORT_COLUMNS = (
    "started_at",
    "id",
    "request_id",
    "key",
    "model",
    "provider",
    "endpoint",
    "status",
    "error_code",
    "stream",
    "client_disconnected",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "charged_usd",
    "latency_ms",
    "ttfb_ms",
    "attempts",
)


class LogFilterForm(forms.Form):
    """The query string of /logs/ and its exports; every field optional."""

    range = forms.ChoiceField(
        required=False,
        choices=(("", "All time"), *((r, f"Last {r}") for r in RANGES), ("custom", "Custom")),
    )
    since = forms.DateTimeField(required=False, help_text="UTC")
    until = forms.DateTimeField(required=False, help_text="UTC")
    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    model = forms.CharField(required=False, max_length=200)
    provider = forms.CharField(required=False, max_length=32)
    status = forms.ChoiceField(required=False, choices=STATUSES)
    error = forms.CharField(required=False, max_length=64, label="Error code")
    stream = forms.ChoiceField(
        required=False, choices=(("", "Streamed or not"), ("yes", "Streamed"), ("no", "Not"))
    )
    min_latency = forms.IntegerField(required=False, min_value=0, max_value=10**7)
    min_cost = forms.DecimalField(required=False, min_value=0, max_digits=20, decimal_places=9)
    q = forms.CharField(required=False, max_length=200, strip=True)

    def __init__(self, data: Any, *, keys: list[tuple[int, str]]) -> None:
        super().__init__(data)
        key_field = self.fields["key"]
        assert isinstance(key_field, forms.TypedChoiceField)  # noqa: S101 -- declared above
        key_field.choices = [("", "Any key"), *((pk, name) for pk, name in keys)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be after the start of the range.")
        return data

    def to_filters(self, *, owner_id: int, now: datetime) -> UsageFilters:
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        if data.get("range") in RANGES:
            since, until = now - RANGES[data["range"]], None
        elif data.get("range") != "custom":
            since = until = None
        query = data.get("q") or ""
        stream = {"yes": True, "no": False}.get(data.get("stream") or "")
        return UsageFilters(
            since=_utc(since),
            until=_utc(until),
            key_id=data.get("key"),
            model=data.get("model") or "",
            provider=data.get("provider") or "",
            status=data.get("status") or "",
            error_code=data.get("error") or "",
            stream=stream,
            min_latency_ms=data.get("min_latency"),
            min_cost=data.get("min_cost"),
            query=query,
            key_ids_named=key_ids_named(owner_id=owner_id, text=query) if query else (),
            # Body logging: prompts and answers are searched where the account has some stored.
            search_bodies=bool(query) and usage_bodies_exist(account_id=owner_id),
        )


def _utc(moment: datetime | None) -> datetime | None:
    # The form's times are naive in the console's zone (UTC) unless they carried an offset.
    if moment is None or timezone.is_aware(moment):
        return moment
    return moment.replace(tzinfo=UTC)


def _owner(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # noqa: S101 -- LoginRequiredMiddleware signed them in
    return request.user


def _filters(request: HttpRequest) -> tuple[LogFilterForm, UsageFilters | None, dict[int, str]]:
    owner = _owner(request)
    keys = key_menu(owner_id=owner.pk)
    form = LogFilterForm(request.GET, keys=keys)
    if not form.is_valid():
        return form, None, dict(keys)
    return form, form.to_filters(owner_id=owner.pk, now=timezone.now()), dict(keys)


@require_GET
@vary_on_headers("HX-Request")
def logs_list(request: HtmxHttpRequest) -> HttpResponse:
    """The newest requests first, 50 a page; an htmx request (the filters, the live refresh)
    gets the results alone (same template, one partial)."""
    owner = _owner(request)
    form, filters, names = _filters(request)
    cursor = request.GET.get("after", "")
    after = usage_search.cursor_decode(cursor)
    page = None
    if filters is not None:
        page = usage_search.usage_log_page(account_id=owner.pk, filters=filters, after=after)
    query = request.GET.copy()
    query.pop("after", None)
    models, providers = usage_search.usage_log_choices(account_id=owner.pk)
    context = {
        "form": form,
        "page": page,
        "rows": [(record, _key_label(record.key_id, names)) for record in page.records]
        if page
        else [],
        "query": query.urlencode(),
        "paged": after is not None,
        "bad_cursor": bool(cursor) and after is None,
        "models": models,
        "providers": providers,
        "keys": sorted(names.items(), key=lambda item: item[1].lower()),
        "filtered": any(v for k, v in request.GET.items() if k != "after"),
        "statuses": STATUSES,
    }
    template = "console/logs.html"
    if request.htmx:
        template += "#log-results"
    return render(request, template, context)


@require_GET
def log_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    """One request in full; 404 for an id that is not the account's (whoever's it is)."""
    owner = _owner(request)
    record = usage_search.usage_record_get(account_id=owner.pk, event_id=event_id)
    if record is None:
        raise Http404("No such request.")
    usage = _usage(record)
    prices = card_prices(card_id=record.card_id) if record.card_id is not None else None
    lines = cost_lines(usage, prices) if prices is not None else []
    priced_now = sum((line.cost for line in lines), Decimal(0))
    names = key_menu(owner_id=owner.pk)
    context = {
        "record": record,
        "key_label": _key_label(record.key_id, dict(names)),
        "usage": usage,
        "lines": lines,
        "prices_changed": bool(lines) and priced_now != record.cost,
        "priced_now": priced_now,
        "waterfall": waterfall(record, staff=request.user.is_staff),
        "bodies": log_bodies_view(account_id=owner.pk, record=record, now=timezone.now()),
    }
    return render(request, "console/log_detail.html", context)


def _usage(record: UsageRecord) -> Usage:
    return Usage(
        uncached_input=record.uncached_input_tokens,
        cache_read=record.cache_read_tokens,
        cache_write=record.cache_write_tokens,
        output=record.output_tokens,
        reasoning=record.reasoning_tokens,
        estimated=record.estimated,
        cache_write_1h=record.cache_write_1h_tokens,
        service_tier=record.service_tier or None,
        server_tools=dict(record.server_tool_calls or {}),
    )


def _key_label(key_id: int | None, names: dict[int, str]) -> str:
    if key_id is None:
        return "No key"
    return names.get(key_id, f"Deleted key #{key_id}")


def _export_row(record: UsageRecord, key: str) -> dict[str, Any]:
    return {
        "started_at": record.started_at.isoformat(),
        "id": record.event_id,
        "request_id": record.request_id,
        "key": key,
        "model": record.model,
        "provider": record.provider,
        "endpoint": record.endpoint,
        "status": record.status,
        "error_code": record.error_code,
        "stream": record.stream,
        "client_disconnected": record.client_disconnected,
        "input_tokens": record.uncached_input_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens + record.cache_write_1h_tokens,
        "output_tokens": record.output_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": price_text(record.cost),
        "charged_usd": price_text(record.charged),
        "latency_ms": record.latency_us / 1000,
        "ttfb_ms": None if record.ttfb_us is None else record.ttfb_us / 1000,
        "attempts": record.attempts,
    }


@require_GET
def logs_export(request: HttpRequest, fmt: str) -> HttpResponse | StreamingHttpResponse:
    """The filtered records (every page) as CSV or JSON lines, streamed as they are read."""
    owner = _owner(request)
    form, filters, names = _filters(request)
    if filters is None:
        errors = "; ".join(f"{name}: {' '.join(map(str, e))}" for name, e in form.errors.items())
        return HttpResponse(f"Bad filter: {errors}\n", status=400, content_type="text/plain")
    records = usage_search.usage_log_rows(account_id=owner.pk, filters=filters)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        writer = csv.writer(Echo())

        def csv_rows() -> Iterator[str]:
            yield writer.writerow(EXPORT_COLUMNS)
            for record in records:
                row = _export_row(record, _key_label(record.key_id, names))
                yield writer.writerow(
                    csv_cell(v) if isinstance(v, str) else ("" if v is None else v)
                    for v in row.values()
                )

        response = StreamingHttpResponse(
            in_chunks(csv_rows()), content_type="text/csv; charset=utf-8"
        )
    else:

        def json_rows() -> Iterator[str]:
            for record in records:
                row = _export_row(record, _key_label(record.key_id, names))
                yield json.dumps(row, ensure_ascii=False) + "\n"

        response = StreamingHttpResponse(
            in_chunks(json_rows()), content_type="application/x-ndjson"
        )
    response["Content-Disposition"] = f'attachment; filename="tokenbyte-logs-{stamp}.{fmt}"'
    return response
