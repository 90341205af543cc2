"""What of an upstream's error a client may see (scrubbed) and what the log keeps (everything but
secrets). Samples are the providers' real messages, as quoted in their users' bug reports."""

import asyncio
import logging
from http import HTTPStatus

import httpx
import orjson
import pytest

from proxy.gateway.health import _check
from proxy.upstream.failures import cite_request, failure_for_status, transport_failure
from proxy.upstream.redact import log_safe, scrub
from proxy.upstream.wording import stream_failure, upstream_message
from tests.fakes.anthropic_rules import AnthropicError
from tests.fakes.gemini_rules import GeminiError
from tests.fakes.openai_rules import OpenAIError

SCRUBBED = [
    # (an upstream's message, what must stay, what must go)
    (
        "Incorrect API key provided: sk-PMafP*******************************E873. You can "
        "find your API key at https://platform.openai.com/account/api-keys.",
        ["Incorrect API key provided: [key].", "find your API key at [url]."],
        ["sk-", "PMafP", "E873", "platform.openai.com"],
    ),
    (
        "Rate limit reached for gpt-4o in organization org-pWX3d5auFNjsEBqgeA5Rp0bd on tokens "
        "per min (TPM): Limit 30000, Used 14567, Requested 24754. Please try again in 18.642s.",
        ["gpt-4o", "Limit 30000, Used 14567, Requested 24754", "try again in 18.642s"],
        ["org-", "pWX3d5auFNjsEBqgeA5Rp0bd"],
    ),
    (
        "Project `proj_9KoeXdtHe0YQJbsF2FQAKmzl` does not have access to model `gpt-4o-mini`",
        ["does not have access to model `gpt-4o-mini`"],
        ["proj_", "9KoeXdtHe0YQJbsF2FQAKmzl"],
    ),
    (
        "Your organization must be verified to stream this model. Please go to: "
        "https://platform.openai.com/settings/organization/general and click on Verify "
        "Organization.",
        ["must be verified to stream this model", "Please go to: [url] and click"],
        ["https://", "settings/organization"],
    ),
    (
        "This request would exceed the rate limit for your organization "
        "(a22cf6e6-a940-4fff-8c4c-1580816ac7be) of 1,000,000 input tokens per minute.",
        ["of 1,000,000 input tokens per minute"],
        ["a22cf6e6", "1580816ac7be"],
    ),
    (
        "Generative Language API has not been used in project 123456789012 before; consumer "
        "projects/123456789012 of generativelanguage.googleapis.com.",
        ["has not been used in project [project]", "projects/[project]"],
        ["123456789012", "googleapis.com"],
    ),
    (
        "connect to vllm-7.gpu.internal:8000 (10.0.3.7:8000, [fd00::7]:8000, fe80::1) failed "
        "for admin@acme.com; see /opt/serve/app/engine.py",
        ["connect to [host] ([address], [address], [address]) failed for [email]; see [path]"],
        ["vllm-7", "8000", "10.0.3.7", "fd00", "fe80", "acme", "/opt", "engine.py"],
    ),
    (
        "litellm.APIConnectionError: ConnectError('[Errno 111] Connection refused')\n"
        'Traceback (most recent call last):\n  File "/usr/lib/python3.11/site-packages/x.py", '
        "line 12, in send\nhttpx.ConnectError: All connection attempts failed",
        ["[exception]"],
        ["litellm", "Errno", "Traceback", "site-packages", "httpx", "refused"],
    ),
    (
        "bad header: Authorization: Bearer sk-proj-abcdEFGH1234 key=AIzaSyA1234567890abcdefgh "
        "ours tb-0123456789abcdefghijklmnopqrstuv api_key=hunter2hunter2 "
        "anthropic sk-ant-api03-AbC_dEf-123 mistral 0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u "
        "at <httpx.Response object at 0x7f3a2b1c9d00>",
        ["bad header:"],
        ["sk-proj", "abcdEFGH1234", "AIza", "tb-0123", "hunter2", "sk-ant", "0aB1cD2e", "0x7f"],
    ),
]
KEPT_WHOLE = [
    # Validation messages a client acts on: nothing in them is the gateway's to hide.
    "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for "
    "claude-sonnet-4-5-20250929",
    "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: "
    "toolu_01A09q90qw90lq917835lq9.",
    "Invalid 'messages[0].content': string too long. Expected a string with maximum length "
    "1048576, but got a string with length 2000000 instead.",
    "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences",
    "Invalid value at 'contents[0].parts[0]' (type.googleapis.com/google.ai.generativelanguage."
    'v1beta.Part), "bad part"',
    "models/gemini-9-ultra is not found for API version v1beta, or is not supported for "
    "generateContent.",
    "The model `gpt-5-ultra` does not exist or you do not have access to it.",
    "Unrecognized request argument supplied: bogus_field",
    "temperature: Input should be less than or equal to 1",
    "at 12:30:45 UTC, max_tokens:64000, gemini-2.5-flash, version 1.2.3",
]


@pytest.mark.parametrize(("raw", "kept", "gone"), SCRUBBED)
def test_scrub_strips_ids_keys_addresses_and_exceptions(
    raw: str, kept: list[str], gone: list[str]
) -> None:
    clean = scrub(raw)
    for piece in kept:
        assert piece in clean
    for piece in gone:
        assert piece not in clean


@pytest.mark.parametrize("message", KEPT_WHOLE)
def test_scrub_keeps_what_a_client_can_act_on(message: str) -> None:
    assert scrub(message) == message


def test_log_safe_keeps_the_detail_but_no_secret() -> None:
    text = (
        "HTTP 401: Incorrect API key provided: sk-live-9f8e7d6c5b4a. Our key sk-live-9f8e7d6c5b4a"
        "FULL in org-pWX3d5auFNjsEBqgeA5Rp0bd at https://api.openai.com/v1 from 10.0.0.7:443"
    )
    logged = log_safe(text, "sk-live-9f8e7d6c5b4aFULL")
    assert "9f8e7d6c5b4a" not in logged
    assert "[credential]" in logged
    for detail in ("org-pWX3d5auFNjsEBqgeA5Rp0bd", "https://api.openai.com/v1", "10.0.0.7:443"):
        assert detail in logged  # the operator's to see


def _json(data: object) -> bytes:
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_json(OpenAIError("you must provide a model parameter", param="model").body()), None),
        (
            _json(AnthropicError("temperature: Input should be less than or equal to 1").body()),
            "temperature: Input should be less than or equal to 1",
        ),
        (
            _json(
                GeminiError(
                    "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
                    details=[
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "INVALID_ARGUMENT",
                            "metadata": {"consumer": "projects/123456789012"},
                        }
                    ],
                ).body()
            ),
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
        # Mistral's 422, in its three shapes: detail in an object, in a JSON string, as a list.
        (
            _json(
                {
                    "object": "error",
                    "message": {
                        "detail": [
                            {
                                "type": "extra_forbidden",
                                "loc": ["body", "messages", 0, "user", "name"],
                                "msg": "Extra inputs are not permitted",
                                "input": "sk-client-secret-value",
                                "url": "https://errors.pydantic.dev/2.6/v/extra_forbidden",
                            }
                        ]
                    },
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            ),
            "messages.0.user.name: Extra inputs are not permitted",
        ),
        (
            _json(
                {
                    "object": "error",
                    "message": '{"detail":[{"type":"extra_forbidden","loc":["body",'
                    '"frequency_penalty"],"msg":"Extra inputs are not permitted","input":0.0,'
                    '"url":"https://errors.pydantic.dev/2.5/v/extra_forbidden"}]}',
                    "type": "internal_error_proxy",
                    "param": None,
                    "code": "1000",
                }
            ),
            "frequency_penalty: Extra inputs are not permitted",
        ),
        (
            _json(
                {
                    "object": "Error",
                    "message": [
                        {
                            "type": "extra_forbidden",
                            "loc": ["body", "tools"],
                            "msg": "Extra inputs are not permitted",
                            "input": [],
                        }
                    ],
                    "type": "invalid_request_error",
                    "code": 3001,
                }
            ),
            "tools: Extra inputs are not permitted",
        ),
        # A proxy's HTML error page (Anthropic's 413 comes from Cloudflare) says nothing usable.
        (
            b"<html><head><title>413 Request Entity Too Large</title></head><body><center>"
            b"<h1>413 Request Entity Too Large</h1></center><hr><center>cloudflare</center>",
            "no details",
        ),
    ],
)
def test_upstream_message_reads_every_providers_shape(body: bytes, expected: str | None) -> None:
    assert upstream_message(body) == (expected or "you must provide a model parameter")


SECRET_BODY = _json(
    {
        "error": {
            "message": "upstream vllm-3.gpu.internal:8000 failed for org-pWX3d5auFNjsEBqgeA5Rp0bd"
            " with key sk-live-abcdef0123456789: RuntimeError('CUDA out of memory')",
            "type": "server_error",
        }
    }
)


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (500, "upstream_error", "The upstream (openai) failed (HTTP 500)."),
        (529, "upstream_error", "The upstream (openai) is overloaded (HTTP 529)."),
        (401, "upstream_auth_failed", "The upstream (openai) refused the gateway's credential"),
        (402, "upstream_auth_failed", "The upstream (openai) refused the gateway's credential"),
        (429, "upstream_rate_limited", "The upstream (openai) is rate-limiting the gateway"),
        (408, "upstream_timeout", "The upstream (openai) timed out (HTTP 408)."),
    ],
)
def test_a_failed_status_is_told_in_our_words_and_logged_in_full(
    status: int, code: str, message: str
) -> None:
    headers = httpx.Headers({"x-request-id": "req_theirs_0001", "retry-after": "7"})
    error = cite_request(failure_for_status("openai", status, SECRET_BODY, headers).error, "req_1")
    assert error.code == code
    assert error.message.startswith(message)
    assert error.message.endswith("Request id: req_1.")
    for leak in ("vllm", ":8000", "org-", "sk-live", "CUDA", "RuntimeError"):
        assert leak not in error.message
        assert leak in (error.detail or "")  # the log line's, with their request id
    assert "req_theirs_0001" in (error.detail or "")


def test_connection_failures_say_what_happened_never_the_exception() -> None:
    refused = httpx.ConnectError("[Errno 111] Connect call failed ('10.0.3.7', 8443)")
    broken = httpx.RemoteProtocolError("peer closed connection without sending complete body")
    timeout = httpx.ConnectTimeout("timed out connecting to vllm.internal:8000")
    for exc, status, words in (
        (refused, HTTPStatus.SERVICE_UNAVAILABLE, "is unreachable."),
        (broken, HTTPStatus.BAD_GATEWAY, "sent a response the gateway could not read."),
        (timeout, HTTPStatus.GATEWAY_TIMEOUT, "did not accept a connection within 10 s."),
    ):
        error = transport_failure("openai", exc, 10.0).error
        assert (error.status, error.message) == (status, f"The upstream (openai) {words}")
        assert str(exc) in (error.detail or "")


def test_a_mid_stream_error_event_shows_its_kind_only() -> None:
    error = stream_failure(
        "anthropic",
        {"type": "overloaded_error", "message": "Overloaded at 10.1.2.3 for org 5f0c7a8e"},
    )
    assert error.message == (
        "The upstream (anthropic) failed mid-stream (overloaded_error): it is overloaded; "
        "retry shortly."
    )
    assert "10.1.2.3" in (error.detail or "")
    odd = stream_failure("openai", {"type": "sk-live-abc123 <script>", "message": "x"})
    assert odd.message == "The upstream (openai) failed mid-stream."


def test_readiness_names_the_check_never_the_exception(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> None:
        raise OSError('connection to server at "db-7.internal" (10.0.0.9), port 5432 failed')

    caplog.set_level(logging.WARNING, logger="proxy.gateway.health")
    assert asyncio.run(_check("the database", failing())) == "unreachable"
    assert "db-7.internal" in caplog.text  # the operator's log has it
