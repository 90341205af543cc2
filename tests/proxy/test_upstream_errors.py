"""Upstream errors reach clients sanitised (DESIGN.md §2b), end to end: fakes that put secrets,
ids, hosts and exception texts in their documented error shapes; the client gets the status
class and what it can act on; the log line gets the detail under the request id."""

import json
import logging
from typing import Any

import httpx
import pytest

from proxy.models import UpstreamCredential
from tests.conftest import LiveServer, free_port
from tests.fakes.anthropic_rules import AnthropicError
from tests.fakes.gemini_rules import GeminiError
from tests.fakes.mistral_api import FakeMistral, MistralValidation
from tests.fakes.openai_rules import OpenAIError
from tests.fakes.server import FakeServer, Scripted

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello"}]
# The credential's name is the operator's: logged, never shown to a client.
NAME = "acme-prod-openai-7"
ORG = "org-pWX3d5auFNjsEBqgeA5Rp0bd"
ANTHROPIC_ORG = "5f0c7a8e-61d4-4b2e-9a1f-3c2d4e5f6a7b"


def post(
    gateway: LiveServer, api_key: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {api_key}", "anthropic-version": "2023-06-01"},
        timeout=30,
    )


def lines_for(caplog: pytest.LogCaptureFixture, request_id: str, level: int) -> list[str]:
    """The gateway's own log lines about a request (its access-log line aside)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == level
        and request_id in record.getMessage()
        and record.name != "tokenbyte.access"
    ]


def rename(gateway: LiveServer, credential: UpstreamCredential, **changes: str) -> None:
    """Give the credential a telling name (and maybe a base URL); wait until routing has it."""
    for field, value in {"name": NAME, **changes}.items():
        setattr(credential, field, value)
    credential.save()
    gateway.wait_for_routing(
        lambda routing: any(
            u.name == NAME and u.base_url == credential.base_url
            for u in routing.upstreams_for(routing.resolve("GPT-4o"))
        )
    )


VALIDATION_ERRORS = [
    # (model, fake, status, body in the provider's documented shape, kept, gone, param)
    (
        "GPT-4o",
        "fake_openai",
        400,
        OpenAIError(
            f"Your organization {ORG} must be verified to stream this model. Please go to: "
            "https://platform.openai.com/settings/organization/general and click on Verify "
            "Organization.",
            param="stream",
            code="unsupported_value",
        ).body(),
        "must be verified to stream this model",
        [ORG, "platform.openai.com", "https://"],
        "stream",
    ),
    (
        "Claude Sonnet 4.5",
        "fake_anthropic",
        400,
        AnthropicError(
            "messages.0.content.0.image.source.url: Unable to download the file from "
            f"https://files.acme.internal:8443/cat.png for organization {ANTHROPIC_ORG}."
        ).body(),
        "messages.0.content.0.image.source.url: Unable to download the file",
        [ANTHROPIC_ORG, "acme", ":8443", "req_011C"],
        None,
    ),
    (
        "Gemini 2.5 Flash",
        "fake_gemini",
        400,
        GeminiError(
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"; consumer "
            "projects/123456789012",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "INVALID_ARGUMENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "consumer": "projects/123456789012",
                        "service": "generativelanguage.googleapis.com",
                    },
                }
            ],
        ).body(),
        "Invalid value at 'generation_config.temperature' (TYPE_FLOAT)",
        ["123456789012", "generativelanguage", "ErrorInfo"],
        None,
    ),
    (
        "Mistral Small",
        "fake_mistral",
        422,
        FakeMistral().error_body(MistralValidation(["body", "frequency_penaltyy"])),
        "frequency_penaltyy: Extra inputs are not permitted",
        ["pydantic.dev", "https://"],
        "frequency_penaltyy",
    ),
]


@pytest.mark.parametrize(
    ("model", "fake", "status", "body", "kept", "gone", "param"), VALIDATION_ERRORS
)
def test_a_validation_error_reaches_the_client_without_the_upstreams_internals(
    translating_gateway: LiveServer,
    api_key: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    model: str,
    fake: str,
    status: int,
    body: dict[str, Any],
    kept: str,
    gone: list[str],
    param: str | None,
) -> None:
    caplog.set_level(logging.INFO)
    server: FakeServer = request.getfixturevalue(fake)
    server.app.script.append(Scripted(status=status, body=body))
    response = post(translating_gateway, api_key, {"model": model, "messages": HELLO})
    assert response.status_code == 400
    error = response.json()["error"]
    assert kept in error["message"]
    assert error["param"] == param
    for leak in gone:
        assert leak not in response.text
    # The operator sees what was held back, under the request id.
    (logged,) = lines_for(caplog, response.headers["x-request-id"], logging.INFO)
    assert f"HTTP {status}" in logged
    assert gone[0] in logged


@pytest.mark.parametrize(
    ("path", "model", "fake", "body"),
    [
        (
            "/v1/chat/completions",
            "GPT-4o",
            "fake_openai",
            {
                "error": {
                    "message": "litellm.APIConnectionError: vllm-3.gpu.internal:8000 refused "
                    f"key sk-fake-openai of {ORG}\nTraceback (most recent call last):\n  File "
                    '"/opt/serve/engine.py", line 12, in send',
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
        (
            "/v1/messages",
            "Claude Sonnet 4.5",
            "fake_anthropic",
            AnthropicError(
                f"Internal server error at vllm-3.gpu.internal:8000 for {ANTHROPIC_ORG}",
                500,
                "api_error",
            ).body(),
        ),
    ],
)
def test_a_5xx_is_told_in_our_words_with_the_request_id_and_logged_in_full(
    translating_gateway: LiveServer,
    api_key: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    path: str,
    model: str,
    fake: str,
    body: dict[str, Any],
) -> None:
    caplog.set_level(logging.INFO)
    server: FakeServer = request.getfixturevalue(fake)
    server.app.script.extend([Scripted(status=500, body=body)] * 2)
    response = post(
        translating_gateway, api_key, {"model": model, "messages": HELLO, "max_tokens": 20}, path
    )
    assert response.status_code == 502
    request_id = response.headers["x-request-id"]
    provider = "openai" if fake == "fake_openai" else "anthropic"
    message = f"The upstream ({provider}) failed (HTTP 500). Request id: {request_id}."
    if path == "/v1/messages":
        assert response.json() == {
            "type": "error",
            "error": {"type": "api_error", "message": message},
        }
    else:
        assert response.json()["error"]["message"] == message
    for leak in ("vllm", ":8000", "org-", ANTHROPIC_ORG, "sk-", "Traceback", "litellm", "fake"):
        assert leak not in response.text
    attempts = lines_for(caplog, request_id, logging.WARNING)
    assert len(attempts) == 2  # one line per failed attempt
    for line in attempts:
        assert "HTTP 500" in line
        assert "vllm-3.gpu.internal:8000" in line
    assert "sk-fake-openai" not in caplog.text  # the credential's secret, echoed by the upstream


def test_our_credential_refused_never_shows_its_name_or_a_key_fragment(
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    openai_upstream: UpstreamCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rename(gateway, openai_upstream)
    fake_openai.app.api_key = "sk-rotated-0123456789"  # ours is now refused, OpenAI's way
    response = post(gateway, api_key, {"model": "GPT-4o", "messages": HELLO})
    assert response.status_code == 502
    request_id = response.headers["x-request-id"]
    assert response.json()["error"] == {
        "message": "The upstream (openai) refused the gateway's credential (HTTP 401). "
        f"Request id: {request_id}.",
        "type": "upstream_error",
        "code": "upstream_auth_failed",
        "param": None,
    }
    attempts = lines_for(caplog, request_id, logging.WARNING)
    assert attempts
    assert all(NAME in line and "Incorrect API key provided" in line for line in attempts)
    assert "sk-fake-openai" not in caplog.text
    assert "sk-fake-o" not in caplog.text  # not even OpenAI's masked quote of it


def test_an_unreachable_upstream_is_our_words_not_the_exception(
    gateway: LiveServer,
    api_key: str,
    openai_upstream: UpstreamCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    dead_port = free_port()
    rename(gateway, openai_upstream, base_url=f"http://127.0.0.1:{dead_port}/v1")
    response = post(gateway, api_key, {"model": "GPT-4o", "messages": HELLO})
    assert response.status_code == 503
    request_id = response.headers["x-request-id"]
    error = response.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert error["message"] == f"The upstream (openai) is unreachable. Request id: {request_id}."
    attempts = lines_for(caplog, request_id, logging.WARNING)
    assert attempts
    assert all(NAME in line and str(dead_port) in line for line in attempts)


def test_a_timeout_names_the_provider_not_the_credential(
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    openai_upstream: UpstreamCredential,
    settings: Any,
) -> None:
    rename(gateway, openai_upstream)
    settings.TOKENBYTE_FIRST_BYTE_TIMEOUT = 0.3
    fake_openai.app.script.extend([Scripted(delay=1.0), Scripted(delay=1.0)])
    response = post(gateway, api_key, {"model": "GPT-4o", "messages": HELLO})
    assert response.status_code == 504
    assert response.json()["error"]["message"] == (
        "The upstream (openai) sent nothing within 0.3 s. "
        f"Request id: {response.headers['x-request-id']}."
    )


def stream_frames(gateway: LiveServer, api_key: str) -> tuple[str, list[str]]:
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        frames = [f for f in response.read().decode().split("\n\n") if f]
    return response.headers["x-request-id"], frames


def test_a_stream_that_fails_after_it_began_ends_in_our_words(
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake_openai.app.stream_error_after = 2
    fake_openai.app.stream_error = {
        "message": f"CUDA out of memory on gpu-7.internal:8000 for {ORG}",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    request_id, frames = stream_frames(gateway, api_key)
    last = json.loads(frames[-1].removeprefix("data: "))
    assert last["error"]["message"] == (
        f"The upstream (openai) failed mid-stream (server_error). Request id: {request_id}."
    )
    (logged,) = lines_for(caplog, request_id, logging.WARNING)
    assert "gpu-7.internal:8000" in logged
    # A connection broken mid-stream: what happened, not the transport's exception.
    fake_openai.app.stream_error_after = None
    fake_openai.app.script.append(Scripted(cut_after_chunks=3))
    request_id, frames = stream_frames(gateway, api_key)
    message = json.loads(frames[-1].removeprefix("data: "))["error"]["message"]
    assert message in (
        f"The upstream (openai) broke the stream off. Request id: {request_id}.",
        f"The upstream (openai) ended the stream before it was complete. Request id: {request_id}.",
    )


def test_no_upstream_response_header_reaches_the_client(
    translating_gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    fake_anthropic: FakeServer,
) -> None:
    fake_openai.app.script.append(Scripted(status=400, body=OpenAIError("bad").body()))
    answers = [
        post(translating_gateway, api_key, {"model": "GPT-4o", "messages": HELLO}),  # the 400
        post(translating_gateway, api_key, {"model": "GPT-4o", "messages": HELLO}),
        post(translating_gateway, api_key, {"model": "GPT-4o", "messages": HELLO, "stream": True}),
        post(
            translating_gateway,
            api_key,
            {"model": "Claude Sonnet 4.5", "messages": HELLO, "max_tokens": 20},
            "/v1/messages",
        ),
    ]
    assert [answer.status_code for answer in answers] == [400, 200, 200, 200]
    sent = {**fake_openai.app.response_headers, **fake_anthropic.app.response_headers}
    for answer in answers:
        for name, value in sent.items():
            assert answer.headers.get(name) != value, name
        assert "set-cookie" not in answer.headers
        assert not any(name.startswith(("openai-", "anthropic-", "cf-")) for name in answer.headers)
