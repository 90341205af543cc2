"""Python client libraries against the gateway, pinned in pyproject.toml's `clients` extra: a
plain answer, a streamed one and a tool call, on /v1/chat/completions for every provider, on
/v1/responses for every provider through each framework's Responses model (openai-agents' and
pydantic-ai's defaults for OpenAI models; GPT passed on, the others translated) and on
/v1/messages for the Anthropic-shaped clients (Claude passed on, GPT and Gemini translated).

Each driver takes the client's documented route to an OpenAI-compatible (or Anthropic) server;
README.md's "Client libraries" section says the same.
"""

import asyncio
import functools
import json
import operator
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.clients.conftest import CLAUDE, GEMINI, GPT, MISTRAL, REPLIES, UPSTREAM_IDS, Stack

# LiteLLM reads its model price map from the internet unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# django_db: so the test database is set up; the data itself is the module fixture's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CHAT_TITLES = [CLAUDE, GPT, GEMINI, MISTRAL]
MESSAGES_TITLES = [CLAUDE, GPT, GEMINI]
PROMPT = "Say hello"
WEATHER_PROMPT = "What is the weather in Paris?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


TOOL_RESULT = "The tool said: Sunny in Paris"  # every fake's answer to that tool result

# Each driver: (stack, model) -> text for "plain" and "stream"; -> (tool name, arguments) for a
# client that hands tool calls back, or the final text for an agent that runs the tool itself.
Driver = Callable[[Stack, str], Any]


def check_usage(model: str, mode: str, prompt: int, completion: int, total: int) -> None:
    """The usage a client read: every fake counts a word a token, so a plain answer's output is
    the reply's word count; a tool run's covers the call and the answer after it."""
    assert prompt > 0
    if mode == "tool":
        assert completion > 0
    else:
        assert completion == len(REPLIES[model].split())
    assert total == prompt + completion


# --- langchain ------------------------------------------------------------------------------


def _langchain_openai(stack: Stack, model: str, responses: bool = False) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=stack.v1,
        api_key=stack.api_key,
        max_retries=0,
        use_responses_api=responses,
    )


def _langchain_responses(stack: Stack, model: str) -> Any:
    return _langchain_openai(stack, model, responses=True)


def _langchain_anthropic(stack: Stack, model: str) -> Any:
    from langchain_anthropic import ChatAnthropic

    # Passed as the documented keywords; the class declares them under pydantic aliases.
    options: dict[str, Any] = {"model": model, "max_tokens": 200}
    return ChatAnthropic(base_url=stack.url, api_key=stack.api_key, max_retries=0, **options)


def _langchain(factory: Callable[[Stack, str], Any], usage: bool = False) -> dict[str, Driver]:
    def checked(message: Any, model: str, mode: str) -> Any:
        if usage:
            counts = message.usage_metadata
            tokens = (counts["input_tokens"], counts["output_tokens"], counts["total_tokens"])
            check_usage(model, mode, *tokens)
        return message

    def plain(stack: Stack, model: str) -> Any:
        return checked(factory(stack, model).invoke(PROMPT), model, "plain").text

    def stream(stack: Stack, model: str) -> Any:
        chunks = list(factory(stack, model).stream(PROMPT))
        checked(functools.reduce(operator.add, chunks), model, "stream")
        return "".join(chunk.text for chunk in chunks)

    def tool(stack: Stack, model: str) -> Any:
        message = factory(stack, model).bind_tools([get_weather]).invoke(WEATHER_PROMPT)
        checked(message, model, "tool")
        return message.tool_calls[0]["name"], message.tool_calls[0]["args"]

    return {"plain": plain, "stream": stream, "tool": tool}


# --- openai-agents --------------------------------------------------------------------------


def _agent(stack: Stack, model: str, tools: list[Any], responses: bool) -> Any:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        set_default_openai_client,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # traces would go to OpenAI's servers
    client = AsyncOpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0)
    if responses:  # the SDK's default: a model name, the default client, the Responses API
        set_default_openai_client(client, use_for_tracing=False)
        return Agent(name="helper", instructions="Be brief.", model=model, tools=tools)
    chat_model = OpenAIChatCompletionsModel(model=model, openai_client=client)
    return Agent(name="helper", instructions="Be brief.", model=chat_model, tools=tools)


def _agents(responses: bool = False) -> dict[str, Driver]:
    def checked(result: Any, model: str, mode: str) -> Any:
        if responses:
            usage = result.context_wrapper.usage
            check_usage(model, mode, usage.input_tokens, usage.output_tokens, usage.total_tokens)
        return result.final_output

    def plain(stack: Stack, model: str) -> Any:
        from agents import Runner

        result = asyncio.run(Runner.run(_agent(stack, model, [], responses), PROMPT))
        return checked(result, model, "plain")

    def stream(stack: Stack, model: str) -> Any:
        from agents import Runner
        from openai.types.responses import ResponseTextDeltaEvent

        async def run() -> str:
            result = Runner.run_streamed(_agent(stack, model, [], responses), PROMPT)
            deltas = [
                event.data.delta
                async for event in result.stream_events()
                if event.type == "raw_response_event"
                and isinstance(event.data, ResponseTextDeltaEvent)
            ]
            assert "".join(deltas) == result.final_output
            return str(checked(result, model, "stream"))

        return asyncio.run(run())

    def tool(stack: Stack, model: str) -> Any:
        from agents import Runner, function_tool

        agent = _agent(stack, model, [function_tool(get_weather)], responses)
        return checked(asyncio.run(Runner.run(agent, WEATHER_PROMPT)), model, "tool")

    return {"plain": plain, "stream": stream, "tool": tool}


# --- pydantic-ai ----------------------------------------------------------------------------


def _pydantic_openai(stack: Stack, model: str) -> Any:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIChatModel(model, provider=OpenAIProvider(base_url=stack.v1, api_key=stack.api_key))


def _pydantic_anthropic(stack: Stack, model: str) -> Any:
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    # pydantic-ai reads Claude's features off the model name: the upstream id, not the title.
    name = UPSTREAM_IDS.get(model, model)
    return AnthropicModel(
        name, provider=AnthropicProvider(base_url=stack.url, api_key=stack.api_key)
    )


def _pydantic_responses(stack: Stack, model: str) -> Any:
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=stack.v1, api_key=stack.api_key)
    return OpenAIResponsesModel(model, provider=provider)


def _pydantic(factory: Callable[[Stack, str], Any], usage: bool = False) -> dict[str, Driver]:
    from pydantic_ai import Agent

    def checked(result: Any, model: str, mode: str) -> None:
        if usage:
            counts = result.usage
            check_usage(model, mode, counts.input_tokens, counts.output_tokens, counts.total_tokens)

    def plain(stack: Stack, model: str) -> Any:
        result = Agent(factory(stack, model)).run_sync(PROMPT)
        checked(result, model, "plain")
        return result.output

    def stream(stack: Stack, model: str) -> Any:
        async def run() -> str:
            async with Agent(factory(stack, model)).run_stream(PROMPT) as result:
                text = "".join([delta async for delta in result.stream_text(delta=True)])
            checked(result, model, "stream")
            return text

        return asyncio.run(run())

    def tool(stack: Stack, model: str) -> Any:
        result = Agent(factory(stack, model), tools=[get_weather]).run_sync(WEATHER_PROMPT)
        checked(result, model, "tool")
        return result.output

    return {"plain": plain, "stream": stream, "tool": tool}


# --- litellm --------------------------------------------------------------------------------


def _litellm(prefix: str, messages_path: bool) -> dict[str, Driver]:
    def call(stack: Stack, model: str, **extra: Any) -> Any:
        import litellm

        return litellm.completion(
            model=f"{prefix}/{model}",
            api_base=stack.url if messages_path else stack.v1,
            api_key=stack.api_key,
            messages=[{"role": "user", "content": extra.pop("prompt", PROMPT)}],
            max_tokens=200,
            num_retries=0,
            **extra,
        )

    def plain(stack: Stack, model: str) -> Any:
        return call(stack, model).choices[0].message.content

    def stream(stack: Stack, model: str) -> Any:
        return "".join(
            chunk.choices[0].delta.content or ""
            for chunk in call(stack, model, stream=True)
            if chunk.choices
        )

    def tool(stack: Stack, model: str) -> Any:
        reply = call(stack, model, prompt=WEATHER_PROMPT, tools=[WEATHER_TOOL])
        function = reply.choices[0].message.tool_calls[0].function
        return function.name, json.loads(function.arguments)

    return {"plain": plain, "stream": stream, "tool": tool}


# --- the matrix -----------------------------------------------------------------------------

TOOL_CALL = ("get_weather", {"city": "Paris"})
CLIENTS: dict[str, tuple[list[str], dict[str, Driver], dict[str, Any]]] = {
    # client: (titles, drivers by mode, expected result by mode; "reply" is the card's text)
    "langchain-openai": (
        CHAT_TITLES,
        _langchain(_langchain_openai),
        {"tool": TOOL_CALL},
    ),
    "langchain-openai-responses": (
        CHAT_TITLES,
        _langchain(_langchain_responses, usage=True),
        {"tool": TOOL_CALL},
    ),
    "langchain-anthropic": (
        MESSAGES_TITLES,
        _langchain(_langchain_anthropic),
        {"tool": TOOL_CALL},
    ),
    "openai-agents": (
        CHAT_TITLES,
        _agents(),
        {"tool": TOOL_RESULT},
    ),
    "openai-agents-responses": (CHAT_TITLES, _agents(responses=True), {"tool": TOOL_RESULT}),
    "pydantic-ai-openai": (CHAT_TITLES, _pydantic(_pydantic_openai), {"tool": TOOL_RESULT}),
    "pydantic-ai-openai-responses": (
        CHAT_TITLES,
        _pydantic(_pydantic_responses, usage=True),
        {"tool": TOOL_RESULT},
    ),
    "pydantic-ai-anthropic": (
        MESSAGES_TITLES,
        _pydantic(_pydantic_anthropic),
        {"tool": TOOL_RESULT},
    ),
    "litellm-openai": (CHAT_TITLES, _litellm("openai", messages_path=False), {"tool": TOOL_CALL}),
    "litellm-anthropic": (
        MESSAGES_TITLES,
        _litellm("anthropic", messages_path=True),
        {"tool": TOOL_CALL},
    ),
}
CASES = [
    pytest.param(client, title, mode, id=f"{client}-{title.split()[-1]}-{mode}")
    for client, (titles, _, _) in CLIENTS.items()
    for title in titles
    for mode in ("plain", "stream", "tool")
]
RESPONSES_CLIENTS = {client for client in CLIENTS if client.endswith("-responses")}


@pytest.mark.parametrize(("client", "title", "mode"), CASES)
def test_client(stack: Stack, client: str, title: str, mode: str) -> None:
    _, drivers, expected = CLIENTS[client]
    result = drivers[mode](stack, title)
    assert result == expected.get(mode, REPLIES[title])
    if expected.get(mode) == TOOL_RESULT:  # the agent ran the tool: its result went upstream
        assert stack.tool_results(title)[-1] == get_weather("Paris")
    if client in RESPONSES_CLIENTS and title == GPT:  # passed on to OpenAI's own endpoint
        assert stack.fake(GPT).received[-1].path == "/v1/responses"


def test_litellm_structured_output_reaches_claude_as_output_config(stack: Stack) -> None:
    """LiteLLM's anthropic/ provider sends the structured-outputs beta's `output_format`; it
    chooses that by the model name, so this names the upstream id."""
    import litellm

    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "ok": {"type": "boolean"}},
        "required": ["answer", "ok"],
        "additionalProperties": False,
    }
    reply = litellm.completion(
        model=f"anthropic/{UPSTREAM_IDS[CLAUDE]}",
        api_base=stack.url,
        api_key=stack.api_key,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=200,
        num_retries=0,
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
    )
    assert json.loads(reply.choices[0].message.content) == {"answer": "hello", "ok": True}
    received = stack.fake(CLAUDE).received[-1]
    assert "output_format" not in received.body
    assert received.body["output_config"]["format"]["type"] == "json_schema"
