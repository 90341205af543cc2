"""The signed-in dashboard (`/`): usage, latency and spend over a range, from billing's rollups
(billing/dashboard.py), with server-drawn SVG charts (no script, no chart library to vendor),
refreshing itself every 5 s through htmx. Filters live in the query string, and every figure
links to /logs/ filtered the same way."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.http import urlencode

from billing.dashboard import Dashboard, Figures, usage_dashboard
from billing.usage_search import usage_log_choices
from keys.selectors import key_menu

RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
CHART_WIDTH, CHART_HEIGHT = 600, 120


class DashboardForm(forms.Form):
    range = forms.ChoiceField(
        required=False,
        choices=(*((r, f"Last {r}") for r in RANGES), ("custom", "Custom")),
    )
    since = forms.DateTimeField(required=False, help_text="UTC")
    until = forms.DateTimeField(required=False, help_text="UTC")
    key = forms.IntegerField(required=False, min_value=0)
    model = forms.CharField(required=False, max_length=200)
    provider = forms.CharField(required=False, max_length=32)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("range") == "custom":
            since, until = data.get("since"), data.get("until")
            if since is None or until is None:
                self.add_error("since", "A custom range needs a start and an end.")
            elif since >= until:
                self.add_error("until", "Must be after the start of the range.")
        return data

    def span(self, now: datetime) -> tuple[datetime, datetime, str]:
        """[since, until) and the range's name (the last 24 hours unless chosen)."""
        data = self.cleaned_data
        if data.get("range") == "custom":
            return _utc(data["since"]), _utc(data["until"]), "custom"
        name = data.get("range") or "24h"
        return now - RANGES[name], now, name


def _utc(moment: datetime) -> datetime:
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


def bars(values: list[Decimal], labels: list[str]) -> list[Bar]:
    """One bar per value, scaled to the chart's height (the largest fills it)."""
    if not values:
        return []
    top = max(values) or Decimal(1)
    width = CHART_WIDTH / len(values)
    out = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = float(value / top) * (CHART_HEIGHT - 4)
        x = index * width
        out.append(Bar(x + width * 0.1, CHART_HEIGHT - height, width * 0.8, height, label))
    return out


def line(values: list[int | None]) -> str:
    """An SVG polyline's points; periods without a value are left out (the line joins over)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    top = max(known) or 1
    step = CHART_WIDTH / max(1, len(values))
    points = [
        f"{index * step + step / 2:.1f},{CHART_HEIGHT - 2 - value / top * (CHART_HEIGHT - 6):.1f}"
        for index, value in enumerate(values)
        if value is not None
    ]
    return " ".join(points)


def _label(moment: datetime, period: str) -> str:
    return moment.strftime("%Y-%m-%d" if period == "day" else "%m-%d %H:%M")


def charts(dash: Dashboard) -> dict[str, Any]:
    labels = [_label(point.starts_at, dash.period) for point in dash.series]
    requests = [Decimal(point.figures.requests) for point in dash.series]
    spend = [point.figures.spend for point in dash.series]
    return {
        "requests": bars(
            requests, [f"{lb}: {int(n)} requests" for lb, n in zip(labels, requests, strict=True)]
        ),
        "spend": bars(spend, [f"{lb}: ${s}" for lb, s in zip(labels, spend, strict=True)]),
        "p50": line([point.figures.latency_us(50) for point in dash.series]),
        "p95": line([point.figures.latency_us(95) for point in dash.series]),
        "first": labels[0] if labels else "",
        "last": labels[-1] if labels else "",
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
    }


@dataclass(frozen=True)
class Row:
    label: str
    figures: Figures
    logs_url: str


def dashboard_context(*, owner_id: int, query: Any) -> dict[str, Any]:
    """Everything dashboard.html shows, for the query string `query`."""
    form = DashboardForm(query)
    keys = dict(key_menu(owner_id=owner_id))
    models, providers = usage_log_choices(account_id=owner_id)
    context: dict[str, Any] = {
        "form": form,
        "keys": sorted(keys.items(), key=lambda item: item[1].lower()),
        "models": models,
        "providers": providers,
    }
    if not form.is_valid():
        return context
    since, until, name = form.span(timezone.now())
    data = form.cleaned_data
    dash = usage_dashboard(
        account_id=owner_id,
        since=since,
        until=until,
        key_id=data.get("key"),
        model=data.get("model") or "",
        provider=data.get("provider") or "",
    )
    # The logs of the same selection: a named range, or the custom one.
    logs: dict[str, Any] = {"range": name}
    if name == "custom":
        logs |= {
            "since": since.strftime("%Y-%m-%dT%H:%M"),
            "until": until.strftime("%Y-%m-%dT%H:%M"),
        }
    for field in ("key", "model", "provider"):
        if data.get(field) not in (None, ""):
            logs[field] = data[field]

    def logs_url(**narrow: Any) -> str:
        return "/logs/?" + urlencode(logs | narrow)

    context |= {
        "dash": dash,
        "charts": charts(dash),
        "range_name": name,
        "logs_url": logs_url(),
        "errors_url": logs_url(status="error"),
        "by_model": [Row(m or "(no model)", f, logs_url(model=m)) for m, f in dash.by_model],
        "by_key": [
            Row(keys.get(k, f"Deleted key #{k}"), f, logs_url(key=k))
            if k
            else Row("No key", f, logs_url())
            for k, f in dash.by_key
        ],
    }
    return context
