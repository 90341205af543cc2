"""Console pages: the landing page / dashboard, the public model catalog, settings, billing,
and the placeholders that later features fill. Thin: the data comes from the apps' selectors;
pages that join several apps (billing's spend with the keys' names) are composed here, above
both, since billing imports no app above it."""

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts import selectors
from accounts.dashboard import dashboard_context
from accounts.models import User
from accounts.services import user_body_logging_set
from billing import selectors as billing
from billing.periods import calendar_month
from keys.selectors import key_names
from tokenbyte.htmx import HtmxHttpRequest


def _api_base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/v1")


@login_not_required
@require_GET
@vary_on_headers("HX-Request")
def home(request: HtmxHttpRequest) -> HttpResponse:
    """The landing page for visitors; the dashboard for signed-in users."""
    context: dict[str, object] = {
        "api_base_url": _api_base_url(request),
        "example_model": selectors.example_model_title(),
    }
    if not request.user.is_authenticated:
        context["catalog"] = selectors.catalog_summary()
        return render(request, "console/landing.html", context)
    assert isinstance(request.user, User)  # noqa: S101 -- narrows the type; authenticated above
    methods = selectors.user_sign_in_methods(user=request.user)
    context["getting_started"] = selectors.user_getting_started(user=request.user, methods=methods)
    context |= dashboard_context(owner_id=request.user.pk, query=request.GET)
    if request.htmx:  # the live refresh and the filters: the figures alone
        return render(request, "console/dashboard.html#dashboard-live", context)
    context["money"] = billing.account_money(account_id=request.user.pk)
    context["postpaid"] = settings.TOKENBYTE_BILLING_MODE == "postpaid"
    return render(request, "console/dashboard.html", context)


def _body_logging_context() -> dict[str, object]:
    return {
        "body_limit": settings.TOKENBYTE_BODY_LOG_MAX_BYTES,
        "body_retention_days": settings.TOKENBYTE_BODY_RETENTION_DAYS,
        "record_retention_days": settings.TOKENBYTE_USAGE_RETENTION_DAYS,
    }


@require_GET
def settings_overview(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)  # noqa: S101 -- LoginRequiredMiddleware signed them in
    methods = selectors.user_sign_in_methods(user=request.user)
    context = {"methods": methods, **_body_logging_context()}
    return render(request, "settings/overview.html", context)


class BodyLoggingForm(forms.Form):
    log_bodies = forms.ChoiceField(choices=(("on", "On"), ("off", "Off")))


@require_POST
@vary_on_headers("HX-Request")
def settings_body_logging(request: HtmxHttpRequest) -> HttpResponse:
    """Turn body logging on or off (the settings page's form); htmx gets the section back,
    a plain form post the settings page (with a message saying what changed)."""
    assert isinstance(request.user, User)  # noqa: S101 -- LoginRequiredMiddleware signed them in
    form = BodyLoggingForm(request.POST)
    if not form.is_valid():
        return HttpResponse(
            "log_bodies must be on or off.\n", status=400, content_type="text/plain"
        )
    enabled = form.cleaned_data["log_bodies"] == "on"
    user_body_logging_set(user=request.user, enabled=enabled)
    if request.htmx:
        context = {"user": request.user, "body_saved": True, **_body_logging_context()}
        return render(request, "settings/overview.html#body-logging", context)
    if enabled:
        messages.success(request, "Body logging is on: new requests' bodies are stored.")
    else:
        messages.success(request, "Body logging is off: no new bodies are stored.")
    return redirect(f"{reverse('settings')}#body-logging")


@dataclass(frozen=True)
class SpendRow:
    label: str  # the model's title or the key's name
    line: billing.SpendLine


def _cursor(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 19 else None


@require_GET
def billing_page(request: HttpRequest) -> HttpResponse:
    """The balance, this month's spend (UTC) by model and by key, and the ledger's pages."""
    assert isinstance(request.user, User)  # noqa: S101 -- LoginRequiredMiddleware signed them in
    account_id = request.user.pk
    before = _cursor(request.GET.get("before"))
    entries, next_before = billing.ledger_page(account_id=account_id, before=before)
    since, until = calendar_month(timezone.now())
    by_model = billing.usage_spend(account_id=account_id, by="model", since=since, until=until)
    by_key = billing.usage_spend(account_id=account_id, by="key_id", since=since, until=until)
    names = key_names(
        owner_id=account_id, key_ids=[line.group for line in by_key if isinstance(line.group, int)]
    )
    context = {
        "money": billing.account_money(account_id=account_id),
        "postpaid": settings.TOKENBYTE_BILLING_MODE == "postpaid",
        "month_start": since,
        "month_end": until,
        "by_model": [SpendRow(str(line.group) or "(no model)", line) for line in by_model],
        "by_key": [SpendRow(_key_label(line.group, names), line) for line in by_key],
        "month_total": sum((line.charged for line in by_model), Decimal(0)),
        "month_requests": sum(line.requests for line in by_model),
        "entries": entries,
        "next_before": next_before,
        "paged": before is not None,
    }
    return render(request, "billing/page.html", context)


def _key_label(key_id: object, names: dict[int, str]) -> str:
    if not isinstance(key_id, int):
        return "No key"
    return names.get(key_id, f"Deleted key #{key_id}")
