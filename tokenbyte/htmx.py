"""The request type of console views that answer htmx with fragments: django-htmx's middleware
(settings.MIDDLEWARE) sets `request.htmx`, truthy for a request htmx made."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
