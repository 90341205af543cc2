"""/models/: the public catalog, sorted and filtered the way people compare models (price,
context, newest, live latency; provider, type, capabilities, maximum price, minimum context),
and /models/<id>/: one card's prices, limits, names and live figures. The live figures are every
account's traffic of the last hour and day, from billing's rollups (no account's own).

A card no enabled credential serves stays listed, marked: the gateway answers it 503
`no_upstream` with what an operator must do, rather than hiding it (README, "Models")."""

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts import selectors
from billing.dashboard import Figures, model_live_figures
from proxy.models import ModelCard, ModelType
from proxy.selectors import card_prices, cards_without_upstream
from tokenbyte.htmx import HtmxHttpRequest

SORTS = (
    ("", "Provider"),
    ("price", "Price: lowest first"),
    ("context", "Context: largest first"),
    ("newest", "Newest"),
    ("latency", "Latency: fastest first"),
)
CAPABILITIES = (
    ("tools", "Tools"),
    ("vision", "Vision"),
    ("json", "JSON"),
    ("reasoning", "Reasoning"),
)


class CatalogForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, strip=True)
    provider = forms.CharField(required=False, max_length=32)
    type = forms.ChoiceField(required=False, choices=(("", "Any type"), *ModelType.choices))
    capability = forms.MultipleChoiceField(required=False, choices=CAPABILITIES)
    max_price = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=6)
    min_context = forms.IntegerField(required=False, min_value=0, max_value=100_000_000)
    sort = forms.ChoiceField(required=False, choices=SORTS)


def _live(since_hours: int) -> dict[str, Figures]:
    now = timezone.now()
    return model_live_figures(since=now - timedelta(hours=since_hours), until=now)


def _p50(figures: Figures | None) -> int | None:
    return figures.latency_us(50) if figures is not None else None


def _filtered(data: dict[str, Any]) -> list[ModelCard]:
    cards = selectors.model_card_list(
        query=data.get("q") or "", provider=data.get("provider") or ""
    )
    if data.get("type"):
        cards = [card for card in cards if card.type == data["type"]]
    for capability in data.get("capability") or ():
        cards = [card for card in cards if getattr(card, f"supports_{capability}")]
    if data.get("max_price") is not None:
        cards = [card for card in cards if card.input_price <= data["max_price"]]
    if data.get("min_context") is not None:
        cards = [card for card in cards if card.context_length >= data["min_context"]]
    return cards


@login_not_required
@require_GET
@vary_on_headers("HX-Request")
def models_catalog(request: HtmxHttpRequest) -> HttpResponse:
    """The public catalog; an htmx request gets only the table (same template, one block)."""
    form = CatalogForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    cards = _filtered(data) if form.is_valid() else []
    live = _live(1)
    sort = data.get("sort") or ""
    if sort == "price":
        cards.sort(key=lambda card: (card.input_price, card.output_price, card.title))
    elif sort == "context":
        cards.sort(key=lambda card: (-card.context_length, card.title))
    elif sort == "newest":
        cards.sort(key=lambda card: card.created_at, reverse=True)
    elif sort == "latency":  # cards with no traffic in the hour go last
        cards.sort(key=lambda card: (_p50(live.get(card.title)) or 10**12, card.title))
    context = {
        "form": form,
        "cards": cards,
        "latency": {card.pk: _p50(live.get(card.title)) for card in cards},
        "unserved": cards_without_upstream(cards=cards),
        "providers": selectors.model_providers_in_catalog(),
        "query": data.get("q") or "",
        "provider": data.get("provider") or "",
        "filtered": any(value for key, value in request.GET.items() if key != "sort"),
        "sorts": SORTS,
        "capabilities": CAPABILITIES,
        "chosen_capabilities": data.get("capability") or [],
        "api_base_url": request.build_absolute_uri("/v1"),
    }
    template = "console/models.html"
    if request.htmx:
        template += "#model-results"
    return render(request, template, context)


@login_not_required
@require_GET
def model_detail(request: HttpRequest, card_id: int) -> HttpResponse:
    card = ModelCard.objects.filter(pk=card_id, active=True).first()
    if card is None:
        raise Http404("No such model in the catalog.")
    prices = card_prices(card_id=card.pk)
    hour, day = _live(1).get(card.title), _live(24).get(card.title)
    context = {
        "card": card,
        "prices": prices,
        "tiers": prices.service_tiers if prices is not None else (),
        "long_context": prices.long_context if prices is not None else (),
        "server_tools": prices.server_tools if prices is not None else (),
        "names": card.names(),
        "windows": [("Last hour", hour), ("Last 24 hours", day)],
        "unserved": card.pk in cards_without_upstream(cards=[card]),
        "api_base_url": request.build_absolute_uri("/v1"),
    }
    return render(request, "console/model_detail.html", context)
