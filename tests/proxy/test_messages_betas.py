"""/v1/messages takes everything Anthropic's Messages API takes, betas included (system-role
messages, output_config, context_management, tool addition/removal blocks, tool references):
to a Claude card untouched, to other cards translated by the README's rule. Through the
official anthropic SDK's beta client, against the strict fakes."""

from typing import Any

import anthropic
import httpx
import pytest

from proxy.catalog.specs import card_spec_from_entry
from proxy.services import card_create
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.slow

# Cards of our own (the shipped catalog changes): a Claude that takes all of it (system-role
# messages, effort, adaptive thinking), one that takes none of it, and reasoning cards at OpenAI
# and Gemini.
CLAUDE, OLDER_CLAUDE = "Beta Claude", "Beta Claude Sonnet"
GPT, GEMINI = "Beta GPT Reasoner", "Beta Gemini Thinker"
CARDS = [
    (CLAUDE, "anthropic", "claude-opus-5-5"),
    (OLDER_CLAUDE, "anthropic", "claude-sonnet-4-5"),
    (GPT, "openai", "gpt-5"),
    (GEMINI, "gemini", "gemini-2.5-flash"),
]
BETAS = ["context-management-2025-06-27", "effort-2025-11-24"]
READ_TOOL = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}
DEFERRED_TOOL = {
    "name": "grep",
    "description": "Search files",
    "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}},
    "defer_loading": True,
}
CONTEXT_MANAGEMENT = {
    "edits": [{"type": "clear_tool_uses_20250919", "keep": {"type": "tool_uses", "value": 3}}]
}
# A conversation as Claude Code writes one: instructions at their place, a tool made available
# mid-way, a reminder that holds for one user turn only.
CONVERSATION: list[Any] = [
    {"role": "user", "content": [{"type": "text", "text": "Find the TODOs"}]},
    {
        "role": "system",
        "content": [
            {"type": "text", "text": "The grep tool is available now."},
            {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "grep"}},
        ],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "Looking."}]},
    {"role": "system", "content": "Reminder: be brief.", "clear_at": "next_user_message"},
    {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "Go on",
                "cache_control": {"type": "ephemeral"},
            }
        ],
    },
    {"role": "system", "content": "Answer in English."},
]


@pytest.fixture
def beta_cards(translating_gateway: LiveServer) -> None:
    for title, provider, upstream_id in CARDS:
        entry = {
            "title": title,
            "provider": provider,
            "upstream_id": upstream_id,
            "context_length": 200000,
            "max_output_tokens": 32000,
            "pricing": {"input": "1.00", "output": "2.00"},
            "capabilities": ["tools", "reasoning"],
        }
        card_create(spec=card_spec_from_entry(entry, "test"))
    translating_gateway.wait_for_routing(
        lambda routing: all(
            routing.resolve(title) is not None and routing.upstreams_for(routing.resolve(title))
            for title, _, _ in CARDS
        )
    )


def beta_create(claude: anthropic.Anthropic, model: str, **extra: Any) -> Any:
    return claude.beta.messages.create(
        model=model,
        max_tokens=2000,
        system=[
            {
                "type": "text",
                "text": "You are a coding agent.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        messages=CONVERSATION,
        tools=[READ_TOOL, DEFERRED_TOOL],
        output_config={"effort": "low"},
        context_management=CONTEXT_MANAGEMENT,
        metadata={"user_id": "session-7"},
        betas=BETAS,
        **extra,
    )


def test_claude_card_gets_system_messages_output_config_and_context_management_untouched(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, beta_cards: None
) -> None:
    fake_anthropic.app.calls_tools = False
    message = beta_create(claude, CLAUDE, thinking={"type": "adaptive"})
    assert message.model == CLAUDE
    assert message.content[-1].text == "Hello from the fake Claude, happy to help."
    request = fake_anthropic.app.received[-1]
    # The body as the SDK sent it, model aside: the strict fake took every beta field.
    assert request.body["model"] == "claude-opus-5-5"
    assert request.body["messages"] == CONVERSATION
    assert request.body["output_config"] == {"effort": "low"}
    assert request.body["context_management"] == CONTEXT_MANAGEMENT
    assert request.body["tools"] == [READ_TOOL, DEFERRED_TOOL]
    assert request.body["thinking"] == {"type": "adaptive"}
    assert request.headers["anthropic-beta"] == ",".join(BETAS)
    # Streamed too.
    with claude.beta.messages.stream(
        model=CLAUDE, max_tokens=100, messages=CONVERSATION, betas=BETAS
    ) as stream:
        assert stream.get_final_message().content[0].text.startswith("Hello from the fake")
    assert fake_anthropic.app.received[-1].body["messages"] == CONVERSATION


def test_an_older_claude_gets_the_same_request_fitted_to_what_it_takes(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer, beta_cards: None
) -> None:
    """Sonnet 4.5 refuses role "system" messages, adaptive thinking and effort (the strict fake
    too): they become user turns of their text and a thinking budget for the effort."""
    fake_anthropic.app.calls_tools = False
    message = beta_create(claude, OLDER_CLAUDE, thinking={"type": "adaptive"})
    assert message.model == OLDER_CLAUDE
    body = fake_anthropic.app.received[-1].body
    assert body["model"] == "claude-sonnet-4-5"
    assert [m["role"] for m in body["messages"]] == ["user", "user", "assistant", "user", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "The grep tool is available now."}
    ]
    assert body["messages"][-1]["content"] == "Answer in English."
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}  # effort low
    assert "output_config" not in body
    assert body["context_management"] == CONTEXT_MANAGEMENT  # Sonnet 4.5 takes it


def test_the_strict_fake_still_refuses_what_anthropic_refuses(
    translating_gateway: LiveServer, api_key: str, beta_cards: None
) -> None:
    url = f"{translating_gateway.url}/v1/messages"
    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    base = {"model": CLAUDE, "max_tokens": 50}
    cases = [
        # A beta field without any beta header: the GA API does not know it.
        (
            {**base, "messages": CONVERSATION[:1], "context_management": CONTEXT_MANAGEMENT},
            {},
            "context_management: Extra inputs are not permitted",
        ),
        (
            {**base, "messages": [{"role": "robot", "content": "hi"}]},
            {"anthropic-beta": BETAS[0]},
            "messages.0: Input tag 'robot' found using 'role'",
        ),
        (
            {**base, "messages": [{"role": "system", "content": "x", "clear_at": "later"}]},
            {"anthropic-beta": BETAS[0]},
            "messages.0.clear_at: Input should be",
        ),
        (
            {
                **base,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "x", "bold": 1}]}
                ],
            },
            {"anthropic-beta": BETAS[0]},
            "messages.0.content.0.bold: Extra inputs are not permitted",
        ),
        (
            {**base, "messages": CONVERSATION[:1], "output_config": {"effort": "extreme"}},
            {},
            "output_config.effort: Input should be",
        ),
    ]
    for body, beta, message in cases:
        response = httpx.post(url, json=body, headers={**headers, **beta})
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"], (body, response.text)


def test_openai_card_gets_system_messages_in_place_and_effort_as_reasoning_effort(
    claude: anthropic.Anthropic, fake_openai: FakeServer, beta_cards: None
) -> None:
    message = beta_create(claude, GPT, tool_choice={"type": "none"})
    assert message.content[0].text == "Hello from the fake model, happy to help."
    sent = fake_openai.app.received[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": [{"type": "text", "text": "Find the TODOs"}]},
        {"role": "system", "content": "The grep tool is available now."},
        {"role": "assistant", "content": "Looking."},
        # The reminder held until the next user message, which has come: left out.
        {"role": "user", "content": [{"type": "text", "text": "Go on"}]},
        {"role": "system", "content": "Answer in English."},
    ]
    assert sent["reasoning_effort"] == "low"
    assert sent["user"] == "session-7"
    # Both tools offered from the start; Anthropic-only settings dropped.
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["read_file", "grep"]
    for dropped in ("context_management", "output_config", "cache_control", "metadata"):
        assert dropped not in sent


def test_gemini_card_gets_system_messages_as_its_instruction_and_effort_as_thinking(
    claude: anthropic.Anthropic, fake_gemini: FakeServer, beta_cards: None
) -> None:
    message = beta_create(claude, GEMINI, tool_choice={"type": "none"})
    assert message.content[-1].text == "Hello from the fake Gemini, happy to help."
    sent = fake_gemini.app.received[-1].body
    assert sent["systemInstruction"] == {
        "parts": [
            {"text": "You are a coding agent."},
            {"text": "The grep tool is available now."},
            {"text": "Answer in English."},
        ]
    }
    assert [turn["role"] for turn in sent["contents"]] == ["user", "model", "user"]
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}


def test_tool_references_in_results_are_dropped_and_what_would_change_the_answer_is_refused(
    claude: anthropic.Anthropic, fake_openai: FakeServer, beta_cards: None
) -> None:
    history: list[Any] = [
        {"role": "user", "content": "Find grep"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [
                        {"type": "text", "text": "found it"},
                        {"type": "tool_reference", "tool_name": "grep"},
                    ],
                }
            ],
        },
    ]
    claude.beta.messages.create(
        model=GPT, max_tokens=100, messages=history, tools=[READ_TOOL, DEFERRED_TOOL], betas=BETAS
    )
    assert fake_openai.app.received[-1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": "found it",
    }
    sent_before = len(fake_openai.app.received)
    extras: list[dict[str, Any]] = [
        {"container": "container_1"},
        {"compaction": {}},
        {"billing_policy": {"type": "billing_policy", "bill_to": "user_profile"}},
    ]
    for extra in extras:
        with pytest.raises(anthropic.BadRequestError, match="available on Anthropic models only"):
            claude.beta.messages.create(
                model=GPT, max_tokens=10, messages=history[:1], betas=BETAS, extra_body=extra
            )
    assert len(fake_openai.app.received) == sent_before
