"""Console URLs (CONTRACT.md §6). /v1, /healthz and /readyz never reach Django (tokenbyte/asgi.py).

Every view needs a signed-in user (LoginRequiredMiddleware) unless marked @login_not_required.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts import catalog, logs, views

urlpatterns = [
    path("", views.home, name="home"),
    path("models/", catalog.models_catalog, name="models"),
    path("models/<int:card_id>/", catalog.model_detail, name="model_detail"),
    path("settings/", views.settings_overview, name="settings"),
    path("settings/body-logging/", views.settings_body_logging, name="settings_body_logging"),
    path("logs/", logs.logs_list, name="logs"),
    re_path(r"^logs/export\.(?P<fmt>csv|jsonl)$", logs.logs_export, name="logs_export"),
    path("logs/<str:event_id>/", logs.log_detail, name="log_detail"),
    path("billing/", views.billing_page, name="billing"),
    path("billing/", include("billing.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("keys/", include("keys.urls")),
    path(
        "favicon.ico",
        # The unhashed name: resolving the manifest here would break `migrate` before collectstatic.
        login_not_required(RedirectView.as_view(url=f"{settings.STATIC_URL}img/logo.svg")),
    ),
]
