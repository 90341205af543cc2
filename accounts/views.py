"""Console pages: the landing page / dashboard, the public model catalog, settings, and the
placeholders that later features fill. Thin: the data comes from accounts.selectors."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts import selectors
from accounts.models import User
from tokenbyte.htmx import HtmxHttpRequest


def _api_base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/v1")


@login_not_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
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
    return render(request, "console/dashboard.html", context)


@login_not_required
@require_GET
@vary_on_headers("HX-Request")
def models_catalog(request: HtmxHttpRequest) -> HttpResponse:
    """The public catalog; an htmx request gets only the table (same template, one block)."""
    query = request.GET.get("q", "").strip()[:200]
    provider = request.GET.get("provider", "").strip()
    context = {
        "cards": selectors.model_card_list(query=query, provider=provider),
        "providers": selectors.model_providers_in_catalog(),
        "query": query,
        "provider": provider,
        "api_base_url": _api_base_url(request),
    }
    template = "console/models.html"
    if request.htmx:
        template += "#model-results"
    return render(request, template, context)


@require_GET
def settings_overview(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)  # noqa: S101 -- LoginRequiredMiddleware signed them in
    methods = selectors.user_sign_in_methods(user=request.user)
    return render(request, "settings/overview.html", {"methods": methods})


@require_GET
def logs_placeholder(request: HttpRequest) -> HttpResponse:
    return render(request, "console/logs.html")
