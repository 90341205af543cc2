"""instructor and llama-index against a gateway, run with .venv-legacy-clients/bin/python (they do
not install beside the project venv's openai==3.57.0).

    legacy_clients.py URL KEY LIBRARY MODEL CASE  -> one JSON result on stdout
    legacy_clients.py --batch < {"url", "key", "cases": [{"id", "library", "model", "case"}]}
                                                  -> {id: result} on stdout, one process for all

URL is the gateway's root. A result is {"ok": value} or {"error": "Type: message"}: one case's
failure is reported as data, so the other cases still run. Imports are inside the drivers: this
file is also imported by the project's tooling (ruff, mypy), which lacks these packages.
"""

import json
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

PROMPT = "Say hello"
WEATHER_PROMPT = "What is the weather in Paris?"


class City(BaseModel):
    """The city the user asks about."""

    city: str


class Answer(BaseModel):
    answer: str
    ok: bool


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


# --- instructor -----------------------------------------------------------------------------


def _instructor_openai(url: str, key: str, mode: str = "TOOLS") -> Any:
    import instructor
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    return instructor.from_openai(client, mode=getattr(instructor.Mode, mode))


def _instructor_anthropic(url: str, key: str) -> Any:
    import instructor
    from anthropic import Anthropic

    # Anthropic's SDK takes the root and adds /v1/messages itself.
    return instructor.from_anthropic(Anthropic(base_url=url, api_key=key, max_retries=0))


def _instructor(factory: Callable[..., Any]) -> dict[str, Callable[[str, str, str], Any]]:
    def ask(model: str) -> dict[str, Any]:
        return {
            "model": model,
            "response_model": City,
            "max_tokens": 200,
            "max_retries": 0,  # instructor's own re-asking: a bad answer should fail, not retry
            "messages": [{"role": "user", "content": WEATHER_PROMPT}],
        }

    def plain(url: str, key: str, model: str) -> Any:
        return factory(url, key).create(**ask(model)).model_dump()

    def stream(url: str, key: str, model: str) -> Any:
        # Every partial as it came: the last is the whole object.
        return [partial.model_dump() for partial in factory(url, key).create_partial(**ask(model))]

    return {"plain": plain, "stream": stream}


def _instructor_json(url: str, key: str, model: str) -> Any:
    """Mode.JSON_SCHEMA: response_format json_schema instead of a forced tool call."""
    client = _instructor_openai(url, key, mode="JSON_SCHEMA")
    answer = client.create(
        model=model,
        response_model=Answer,
        max_retries=0,
        messages=[{"role": "user", "content": PROMPT}],
    )
    return answer.model_dump()


# --- llama-index ----------------------------------------------------------------------------


def _openai_like(url: str, key: str, model: str) -> Any:
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=model,
        api_base=f"{url}/v1",
        api_key=key,
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
    )


def _llama_anthropic(url: str, key: str, model: str) -> Any:
    from llama_index.llms.anthropic import Anthropic

    return Anthropic(model=model, base_url=url, api_key=key, max_tokens=200, max_retries=0)


def _llama(factory: Callable[[str, str, str], Any]) -> dict[str, Callable[[str, str, str], Any]]:
    from llama_index.core.llms import ChatMessage

    def plain(url: str, key: str, model: str) -> Any:
        return (
            factory(url, key, model)
            .chat([ChatMessage(role="user", content=PROMPT)])
            .message.content
        )

    def stream(url: str, key: str, model: str) -> Any:
        chunks = factory(url, key, model).stream_chat([ChatMessage(role="user", content=PROMPT)])
        return "".join(chunk.delta or "" for chunk in chunks)

    def tool(url: str, key: str, model: str) -> Any:
        from llama_index.core.tools import FunctionTool

        llm = factory(url, key, model)
        response = llm.chat_with_tools([FunctionTool.from_defaults(fn=get_weather)], WEATHER_PROMPT)
        calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
        return [[call.tool_name, call.tool_kwargs] for call in calls]

    def agent(url: str, key: str, model: str) -> Any:
        """predict_and_call: llama-index runs the tool and hands back its output."""
        from llama_index.core.tools import FunctionTool

        llm = factory(url, key, model)
        return str(
            llm.predict_and_call([FunctionTool.from_defaults(fn=get_weather)], WEATHER_PROMPT)
        )

    return {"plain": plain, "stream": stream, "tool": tool, "agent": agent}


def _llama_openai_refuses(url: str, key: str, model: str) -> Any:
    """llama-index's plain OpenAI class, given a catalog title, as the README says it refuses."""
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI

    llm = OpenAI(model=model, api_base=f"{url}/v1", api_key=key, max_retries=0)
    return llm.chat([ChatMessage(role="user", content=PROMPT)]).message.content


def _drivers() -> dict[str, dict[str, Callable[[str, str, str], Any]]]:
    return {
        "instructor-openai": {**_instructor(_instructor_openai), "json": _instructor_json},
        "instructor-anthropic": _instructor(_instructor_anthropic),
        "llama-index-openai-like": _llama(_openai_like),
        "llama-index-anthropic": _llama(_llama_anthropic),
        "llama-index-openai": {"plain": _llama_openai_refuses},
    }


def run(url: str, key: str, library: str, model: str, case: str) -> dict[str, Any]:
    try:
        return {"ok": _drivers()[library][case](url, key, model)}
    except Exception as error:  # reported as data: the test decides whether it was expected
        return {"error": f"{type(error).__name__}: {error}"}


def main(argv: list[str]) -> None:
    if argv[1:] == ["--batch"]:
        request = json.load(sys.stdin)
        results = {
            case["id"]: run(
                request["url"], request["key"], case["library"], case["model"], case["case"]
            )
            for case in request["cases"]
        }
        print(json.dumps(results))
        return
    url, key, library, model, case = argv[1:]
    print(json.dumps(run(url, key, library, model, case)))


if __name__ == "__main__":
    main(sys.argv)
