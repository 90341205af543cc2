"""The /keys/ console pages. Thin: forms validate, services write, selectors read.

Every key is looked up among the signed-in user's own keys, so anyone else's is a 404. With
htmx, the new-key form and the revoke button swap fragments in place; without it, the same
views serve whole pages.
"""

import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.models import User
from keys.forms import KeyForm
from keys.models import ApiKey, BudgetPeriod
from keys.selectors import keys_of, keys_period_spend, model_choices
from keys.services import MintedKey, key_mint, key_revoke, key_rotate, key_update
from proxy.models import ModelCard, ModelType
from tokenbyte.htmx import HtmxHttpRequest

PERIOD_WORDS = {
    BudgetPeriod.DAILY: "today",
    BudgetPeriod.WEEKLY: "this week",
    BudgetPeriod.MONTHLY: "this month",
    BudgetPeriod.NEVER: "in total",
}
# The snippets' model for a key that allows every model (else the catalog's first chat model).
FALLBACK_MODEL = "GPT-4o"


@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    spend: Decimal  # in the budget's current window; this month's without a budget
    period_words: str
    resets_at: datetime | None  # when a budget's window ends (None: lifetime, or no budget)


def _owner(request: HttpRequest) -> User:
    return cast(User, request.user)  # every view here is login_required


def _rows(keys: list[ApiKey]) -> list[KeyRow]:
    spend = keys_period_spend(keys=keys)
    return [
        KeyRow(
            key,
            spend[key.pk].spent,
            PERIOD_WORDS[BudgetPeriod(spend[key.pk].period)],
            spend[key.pk].resets_at if key.budget is not None else None,
        )
        for key in keys
    ]


def _own_key(request: HttpRequest, key_id: int) -> ApiKey:
    return get_object_or_404(keys_of(_owner(request)), pk=key_id)


@login_required
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    return render(request, "keys/list.html", {"rows": _rows(list(keys_of(_owner(request))))})


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def key_new(request: HtmxHttpRequest) -> HttpResponse:
    form = KeyForm(request.POST or None, model_choices=model_choices())
    if request.method == "POST" and form.is_valid():
        try:
            minted = key_mint(owner=_owner(request), spec=form.spec())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _reveal(request, minted, "Your new API key")
    template = "keys/_form.html" if request.htmx else "keys/new.html"
    # `swap`: the form posts itself through htmx, so its answer replaces it in place.
    return render(request, template, {"form": form, "action": reverse("keys:new"), "swap": True})


@login_required
@require_http_methods(["GET", "POST"])
def key_edit(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    choices = model_choices(include=key.allowed_models)
    if request.method == "POST" and key.revoked_at is None:
        form = KeyForm(request.POST, initial=KeyForm.initial_for(key), model_choices=choices)
        if form.is_valid():
            try:
                key_update(key=key, spec=form.spec())
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Saved “{form.cleaned_data['name']}”.")
                return redirect("keys:list")
    else:
        form = KeyForm(initial=KeyForm.initial_for(key), model_choices=choices)
    return render(
        request,
        "keys/edit.html",
        {
            "key": key,
            "row": _rows([key])[0],
            "form": form,
            "action": reverse("keys:edit", args=[key.pk]),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def key_rotate_view(request: HtmxHttpRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    if request.method == "POST":
        try:
            minted = key_rotate(key=key)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("keys:list")
        return _reveal(request, minted, f"New secret for “{minted.key.name}”")
    return render(request, "keys/confirm.html", {"key": key, "action": "rotate"})


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke_view(request: HtmxHttpRequest, key_id: int) -> HttpResponse:
    key = _own_key(request, key_id)
    if request.method == "POST":
        key = key_revoke(key=key)
        if request.htmx:
            return render(request, "keys/_key_row.html", {"row": _rows([key])[0]})
        messages.success(request, f"Revoked “{key.name}”. It stops working within a second.")
        return redirect("keys:list")
    return render(request, "keys/confirm.html", {"key": key, "action": "revoke"})


def _reveal(request: HtmxHttpRequest, minted: MintedKey, heading: str) -> HttpResponse:
    """The one page that ever shows the secret; never cached."""
    base_url = request.build_absolute_uri("/v1")
    model = _snippet_model(minted.key)
    context = {
        "heading": heading,
        "key": minted.key,
        "secret": minted.secret,
        "base_url": base_url,
        "curl": curl_snippet(base_url, minted.secret, model),
        "python": python_snippet(base_url, minted.secret, model),
    }
    template = "keys/_reveal.html" if request.htmx else "keys/reveal.html"
    response = render(request, template, context)
    add_never_cache_headers(response)
    return response


def _snippet_model(key: ApiKey) -> str:
    if key.allowed_models:
        return str(key.allowed_models[0])
    chat = ModelCard.objects.filter(active=True, type=ModelType.CHAT)
    if chat.filter(title=FALLBACK_MODEL).exists():
        return FALLBACK_MODEL
    card = chat.only("title").first()
    return card.title if card else FALLBACK_MODEL


def _chat_body(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello!"}]}


def curl_snippet(base_url: str, secret: str, model: str) -> str:
    return (
        f"curl {shlex.quote(base_url + '/chat/completions')} \\\n"
        f'  -H "Authorization: Bearer {secret}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(json.dumps(_chat_body(model)))}"
    )


def python_snippet(base_url: str, secret: str, model: str) -> str:
    return (
        "from openai import OpenAI\n\n"
        f"client = OpenAI(base_url={json.dumps(base_url)}, api_key={json.dumps(secret)})\n"
        "reply = client.chat.completions.create(\n"
        f"    model={json.dumps(model)},\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
