"""An OpenAI chat request as a Gemini generateContent request (pure; raises InvalidRequest)."""

import mimetypes
from typing import Any

import orjson

from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card
from proxy.providers.gemini.schema import gemini_schema
from proxy.providers.priced import check_server_tool, check_service_tier
from proxy.providers.translate import (
    EFFORT_BUDGETS,
    OPENAI_BOOKKEEPING,
    data_url,
    function_of,
    image_url_of,
    json_schema_of,
    max_output,
    reasoning_effort,
    refuse_unknown,
    response_format_type,
    tool_arguments,
    unsupported,
)

# Gemini 3 checks that a function call sent back carries its thought signature. For calls that
# have none (made by another model, or by a client that dropped the field), Google documents
# this value to skip the check.
SKIP_SIGNATURE = "skip_thought_signature_validator"
MAX_STOP_SEQUENCES = 5
KNOWN_FIELDS = frozenset(
    {
        *OPENAI_BOOKKEEPING,
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",  # Gemini's own knob, accepted as an extension
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",  # Gemini decides; no switch to pass it to
        "response_format",
        "reasoning_effort",
        "user",  # nothing to map it to: dropped
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
        "verbosity",
    }
)
GROUNDING_PRICES = ("google_search", "grounded_prompt")
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}


def is_gemini_3(card: Card) -> bool:
    return card.upstream_id.startswith("gemini-3")


def gemini_body(body: dict[str, Any], card: Card) -> dict[str, Any]:
    refuse_unknown(body, KNOWN_FIELDS)
    check_service_tier(body, card, forwarded=False)  # no tier is passed to Gemini here
    for field in ("logit_bias", "audio", "prediction", "functions"):
        if body.get(field):
            raise unsupported(card, field)
    if body.get("logprobs") or body.get("top_logprobs") is not None:
        raise unsupported(card, "logprobs")
    if body.get("function_call") is not None:
        raise unsupported(card, "function_call")
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise unsupported(card, "modalities", "; it answers in text here")
    system, contents = _contents(body["messages"], card)
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(body, card)
    tools: list[dict[str, Any]] = []
    if body.get("web_search_options") is not None:
        # Grounding with Google Search, priced per query (Gemini 3) or per grounded prompt.
        if not any(card.prices.server_tool(name) is not None for name in GROUNDING_PRICES):
            check_server_tool(body, "web_search_options", "google_search", card)
        tools.append({"googleSearch": {}})
    if tools:
        out["tools"] = tools
    if body.get("tools"):
        out["tools"] = [
            *tools,
            {"functionDeclarations": [_declaration(t, i) for i, t in enumerate(body["tools"])]},
        ]
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config is not None:
            out["toolConfig"] = tool_config
    if config:
        out["generationConfig"] = config
    return out


def _generation_config(body: dict[str, Any], card: Card) -> dict[str, Any]:
    config: dict[str, Any] = {}
    limit = max_output(body)
    if limit is not None:
        config["maxOutputTokens"] = limit
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    if (body.get("n") or 1) != 1:
        config["candidateCount"] = body["n"]
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(
                f"'stop' may hold at most {MAX_STOP_SEQUENCES} sequences for {card.title}.",
                param="stop",
                code="invalid_value",
            )
        config["stopSequences"] = stops
    kind = response_format_type(body)
    if kind is not None:
        config["responseMimeType"] = "application/json"
        if kind == "json_schema":
            _name, schema = json_schema_of(body["response_format"])
            config["responseSchema"] = gemini_schema(schema)
    thinking = _thinking(body, card)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _thinking(body: dict[str, Any], card: Card) -> dict[str, Any] | None:
    asked = body.get("reasoning_effort")
    effort = reasoning_effort(body, card)  # validates; None for "none"
    if asked is None or not card.supports_reasoning:
        return None
    if is_gemini_3(card):
        # Gemini 3 thinks at a level, not a budget, and cannot stop thinking altogether.
        return {"thinkingLevel": "high" if effort in ("medium", "high", "xhigh") else "low"}
    if effort is None:
        # 2.5 Flash and Flash-Lite can stop thinking; 2.5 Pro thinks at least 128 tokens.
        return {"thinkingBudget": 128 if "-pro" in card.upstream_id else 0}
    return {"thinkingBudget": EFFORT_BUDGETS[effort]}


def _declaration(tool: Any, index: int) -> dict[str, Any]:
    function = function_of(tool, index)
    out: dict[str, Any] = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    parameters = gemini_schema(function.get("parameters"))
    if parameters.get("properties"):  # Gemini refuses an OBJECT without properties
        out["parameters"] = parameters
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if isinstance(name, str):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise InvalidRequest(
        "'tool_choice' must be auto, none, required or "
        '{"type": "function", "function": {"name": …}}.',
        param="tool_choice",
        code="invalid_value",
    )


# --- contents -------------------------------------------------------------------------------


def _contents(messages: list[Any], card: Card) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id -> function name, for the responses
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message["role"]
        if role in ("system", "developer"):
            system += _parts(message.get("content"), where, text_only=True)
            continue
        if role == "user":
            parts = _parts(message.get("content"), where, text_only=False)
        elif role == "assistant":
            parts = _model_parts(message, where, card, call_names)
            role = "model"
        elif role == "tool":
            parts = [_function_response(message, where, call_names)]
            role = "user"
        else:
            raise InvalidRequest(
                f"'{where}.role' {role!r} is not supported here; use tools and tool messages.",
                param=f"{where}.role",
                code="invalid_value",
            )
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts  # all of a turn's function responses go together
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _parts(content: Any, where: str, *, text_only: bool) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for index, part in enumerate(content):
        part_where = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"'{part_where}.{kind}' must be a string.", param=f"{part_where}.{kind}"
                )
            if text:
                parts.append({"text": text})
        elif not text_only and kind == "image_url":
            parts.append(_media(image_url_of(part, part_where), f"{part_where}.image_url.url"))
        elif not text_only and kind == "input_audio":
            parts.append(_audio(part, part_where))
        elif not text_only and kind == "file":
            file: dict[str, Any] = part["file"] if isinstance(part.get("file"), dict) else {}
            parts.append(_media(str(file.get("file_data", "")), f"{part_where}.file.file_data"))
        else:
            raise InvalidRequest(
                f"'{part_where}.type' {kind!r} is not supported here.",
                param=f"{part_where}.type",
                code="invalid_value",
            )
    return parts


def _media(url: str, where: str) -> dict[str, Any]:
    inline = data_url(url, where)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if not url.startswith(("https://", "http://", "gs://")):
        raise InvalidRequest(
            f"'{where}' must be a data: URL or an http(s) URL.", param=where, code="invalid_value"
        )
    file_data = {"fileUri": url}
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    if guessed:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def _audio(part: dict[str, Any], where: str) -> dict[str, Any]:
    audio: dict[str, Any] = part["input_audio"] if isinstance(part.get("input_audio"), dict) else {}
    media = _AUDIO_FORMATS.get(str(audio.get("format")))
    if media is None or not isinstance(audio.get("data"), str):
        raise InvalidRequest(
            f"'{where}.input_audio' needs base64 'data' and a 'format' of wav or mp3.",
            param=f"{where}.input_audio",
            code="invalid_value",
        )
    return {"inlineData": {"mimeType": media, "data": audio["data"]}}


def _model_parts(
    message: dict[str, Any], where: str, card: Card, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    parts = _parts(message.get("content"), where, text_only=True)
    for index, call in enumerate(message.get("tool_calls") or ()):
        call_id, name, arguments = tool_arguments(call, f"{where}.tool_calls[{index}]")
        call_names[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": arguments}}
        extra = call.get("extra_content")
        google = extra.get("google") if isinstance(extra, dict) else None
        signature = google.get("thought_signature") if isinstance(google, dict) else None
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        elif index == 0 and is_gemini_3(card):
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return parts


def _function_response(
    message: dict[str, Any], where: str, call_names: dict[str, str]
) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise InvalidRequest(
            f"'{where}.tool_call_id' matches no tool call of an earlier assistant message; "
            "Gemini needs the function's name.",
            param=f"{where}.tool_call_id",
            code="invalid_value",
        )
    text = "".join(part["text"] for part in _parts(message.get("content"), where, text_only=True))
    # Gemini wants an object; "output" is its documented key for a function's plain result.
    return {"functionResponse": {"name": name, "response": _response_object(text)}}


def _response_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"output": text}
    return value if isinstance(value, dict) else {"output": value}
