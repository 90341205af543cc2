"""The model ids coding agents send when the user names none resolve to catalog cards.

Seen on the wire (each CLI run as a subprocess against a loopback server that logged the
requests' `model`): Claude Code 2.1.332 sends `claude-opus-5-5` with no `--model`, and its
aliases `sonnet` and `haiku` (the latter also its small, fast model for background work) are
`claude-sonnet-5-5` and `claude-haiku-5-5`. Codex's `gpt-6.1-sol` is in its bundled model list.
"""

import anthropic
import openai
import pytest

from proxy.selectors import load_routing_table
from proxy.services import bootstrap_run
from tests.fakes.server import FakeServer

AGENT_DEFAULTS = {
    # upstream id sent: (provider, card title)
    "claude-opus-5-5": ("anthropic", "Claude Opus 5.5"),
    "claude-sonnet-5-5": ("anthropic", "Claude Sonnet 5.5"),
    "claude-haiku-5-5": ("anthropic", "Claude Haiku 5.5"),
    "gpt-6.1-sol": ("openai", "GPT-6.1 Sol"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("upstream_id", AGENT_DEFAULTS)
def test_agents_default_model_ids_resolve_after_bootstrap(upstream_id: str) -> None:
    bootstrap_run(provider_env={})
    card = load_routing_table(version=1).resolve(upstream_id)
    assert card is not None, f"{upstream_id} resolves to no card"
    assert (card.provider, card.title, card.upstream_id) == (
        *AGENT_DEFAULTS[upstream_id],
        upstream_id,
    )
    assert card.prices.input > 0
    assert card.max_output_tokens


@pytest.mark.slow
def test_claude_codes_default_model_is_answered_on_messages(
    claude: anthropic.Anthropic, fake_anthropic: FakeServer
) -> None:
    message = claude.messages.create(
        model="claude-opus-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.model == "Claude Opus 5.5"
    assert fake_anthropic.app.received[-1].body["model"] == "claude-opus-5-5"


@pytest.mark.slow
def test_codexs_model_is_answered_on_chat_completions(
    chat_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    reply = chat_client.chat.completions.create(
        model="gpt-6.1-sol", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "GPT-6.1 Sol"
    assert fake_openai.app.received[-1].body["model"] == "gpt-6.1-sol"
