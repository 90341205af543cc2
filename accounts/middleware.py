"""A fixed Content-Security-Policy: the console runs only our own static files.

A header middleware rather than django-csp: the policy is one constant string (no nonces are
needed, because no template carries inline script or style), and it is sent in DEBUG too, so
development and the browser tests run under exactly the policy production enforces.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# form-action also governs where a form's redirect may lead: the OAuth2 providers' consent pages.
POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # data: for the TOTP QR code allauth renders inline
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self' https://github.com https://discord.com",
    )
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Django's technical error pages (DEBUG only) rely on inline style and script.
        if settings.DEBUG and response.status_code >= 400:
            return response
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
