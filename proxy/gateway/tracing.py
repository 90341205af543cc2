"""OpenTelemetry traces of API requests, switched on by OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT.

The spans are built after the fact from each request's usage event (the one emission point,
proxy/gateway/observe.py): one SERVER span per request, one CLIENT span per upstream attempt
in its attempt log, with the event's own clock readings as their start and end. Nothing on the
request path opens or closes a span, so a request pays for tracing only once it has ended.

This module is all the gateway imports when tracing is off: it names no OpenTelemetry package,
and the runtime's `tracing` stays None, so each request pays one test of it
(tests/proxy/test_tracing.py checks that the SDK is never imported). When on, the SDK and the
exporter are imported by proxy/gateway/spans.py, in each worker process as its runtime starts.
"""

from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.conf import settings

from proxy.gateway.http import Headers

if TYPE_CHECKING:
    from proxy.gateway.spans import Spans

# The request's headers, set by the app for each request only when tracing is on: the client's
# `traceparent` / `tracestate` are read from them once the request has ended (its usage event
# is emitted in the request's own task, so this is the request's value).
REQUEST_HEADERS: ContextVar[Headers] = ContextVar("tokenbyte_request_headers")


def start_tracing() -> "Spans | None":
    """This process's span exporter when tracing is configured, else None (nothing imported)."""
    if not settings.TOKENBYTE_TRACING:
        return None
    from proxy.gateway.spans import Spans  # the SDK, imported only when tracing is on

    return Spans(REQUEST_HEADERS)


__all__ = ["REQUEST_HEADERS", "start_tracing"]
