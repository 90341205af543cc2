"""A strict fake of the Gemini API (generativelanguage v1beta): generateContent,
streamGenerateContent?alt=sse, embedContent and batchEmbedContents.

Field names are the REST reference's (and google-genai's to_mldev converters'); anything else is
refused as Google's API refuses it: HTTP 400 INVALID_ARGUMENT, 'Invalid JSON payload received.
Unknown name "x" at 'path': Cannot find field.'. The key travels in x-goog-api-key: missing is
403 PERMISSION_DENIED, wrong is 400 INVALID_ARGUMENT with reason API_KEY_INVALID. Gemini 3
models check thought signatures on the current turn's function calls. Streams use CRLF, as
Google's do. Answers are deterministic (one token per word).
"""

import hashlib
import re
from typing import Any

import orjson

from tests.fakes.server import FakeAPI, Scripted

REQUEST_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "labels",
        "serviceTier",
        "store",
    }
)
CONTENT_FIELDS = frozenset({"role", "parts"})
PART_DATA = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    }
)
PART_FIELDS = PART_DATA | {
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "partMetadata",
    "mediaResolution",
}
GENERATION_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    }
)
THINKING_FIELDS = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
TOOL_FIELDS = frozenset(
    {
        "functionDeclarations",
        "googleSearch",
        "codeExecution",
        "googleSearchRetrieval",
        "urlContext",
        "computerUse",
        "fileSearch",
        "googleMaps",
    }
)
DECLARATION_FIELDS = frozenset(
    {
        "name",
        "description",
        "parameters",
        "parametersJsonSchema",
        "response",
        "responseJsonSchema",
        "behavior",
    }
)
SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
EMBED_FIELDS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
# model -> kind: "3" (thinking levels, signatures enforced), "2.5" (budgets), "2.0", "embedding"
MODELS = {
    "gemini-3-pro-preview": "3",
    "gemini-2.5-pro": "2.5-pro",
    "gemini-2.5-flash": "2.5",
    "gemini-2.5-flash-lite": "2.5",
    "gemini-2.0-flash": "2.0",
    "gemini-2.0-flash-lite": "2.0",
    "gemini-embedding-001": "embedding",
}
SKIP_SIGNATURE = "skip_thought_signature_validator"
_PATH = re.compile(r"/v1beta/models/(?P<model>[^/:]+):(?P<method>\w+)")


class GeminiError(Exception):
    def __init__(
        self,
        message: str,
        status: int = 400,
        code: str = "INVALID_ARGUMENT",
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.details = status, code, details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": str(self), "status": self.code}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


def unknown(name: str, where: str) -> GeminiError:
    at = f" at '{where}'" if where else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    return GeminiError(
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": where, "description": message}],
            }
        ],
    )


def snake(path: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), path)


def check_fields(value: Any, allowed: frozenset[str], where: str) -> None:
    if not isinstance(value, dict):
        raise GeminiError(f"Invalid value at '{snake(where)}': expected an object.")
    for name in value:
        if name not in allowed:
            raise unknown(name, snake(where))


def signature_for(name: str) -> str:
    return "c2ln" + hashlib.sha256(name.encode()).hexdigest()[:24]


def words(text: str) -> int:
    return len(text.split())


class FakeGemini(FakeAPI):
    def __init__(self, api_key: str = "fake-gemini-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.cached_tokens = 0  # reported as cachedContentTokenCount (inside promptTokenCount)
        self.thoughts_tokens = 0  # reported as thoughtsTokenCount by thinking models
        self.embed_usage = True  # whether embedding answers carry usageMetadata
        self.reply = "Hello from the fake Gemini, happy to help."
        self.stream_error_after: int | None = None

    # --- validation ---------------------------------------------------------------------
    def check_key(self, headers: dict[str, str]) -> None:
        key = headers.get("x-goog-api-key")
        if key is None:
            raise GeminiError(
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
                403,
                "PERMISSION_DENIED",
            )
        if key != self.api_key:
            raise GeminiError(
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    def check_generate(self, model: str, body: Any) -> None:
        check_fields(body, REQUEST_FIELDS, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise GeminiError("* GenerateContentRequest.contents: contents is not specified\n")
        for index, content in enumerate(contents):
            self.check_content(content, f"contents[{index}]", role_required=len(contents) > 1)
        if "systemInstruction" in body:
            self.check_content(body["systemInstruction"], "systemInstruction", role_required=False)
        config = body.get("generationConfig") or {}
        check_fields(config, GENERATION_FIELDS, "generationConfig")
        if len(config.get("stopSequences") or ()) > 5:
            raise GeminiError(
                "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences"
            )
        if "responseSchema" in config:
            self.check_schema(config["responseSchema"], "generationConfig.responseSchema")
            if config.get("responseMimeType") != "application/json":
                raise GeminiError(
                    "response_mime_type must be application/json to use response_schema."
                )
        self.check_thinking(model, config.get("thinkingConfig"))
        for index, tool in enumerate(body.get("tools") or ()):
            check_fields(tool, TOOL_FIELDS, f"tools[{index}]")
            for number, declaration in enumerate(tool.get("functionDeclarations") or ()):
                where = f"tools[{index}].functionDeclarations[{number}]"
                check_fields(declaration, DECLARATION_FIELDS, where)
                if "parameters" in declaration:
                    self.check_schema(declaration["parameters"], f"{where}.parameters")
        choice = (body.get("toolConfig") or {}).get("functionCallingConfig")
        if choice is not None:
            check_fields(
                choice,
                frozenset({"mode", "allowedFunctionNames"}),
                "toolConfig.functionCallingConfig",
            )
            if choice.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
                raise GeminiError("Invalid value at 'tool_config.function_calling_config.mode'")
        if MODELS[model] == "3":
            self.check_signatures(contents)

    def check_content(self, content: Any, where: str, *, role_required: bool) -> None:
        check_fields(content, CONTENT_FIELDS, where)
        role = content.get("role")
        if (role_required or role is not None) and role not in ("user", "model"):
            raise GeminiError("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise GeminiError(
                f"* GenerateContentRequest.{snake(where)}.parts: contents.parts must not be empty."
            )
        for index, part in enumerate(parts):
            part_where = f"{where}.parts[{index}]"
            check_fields(part, PART_FIELDS, part_where)
            data = [name for name in part if name in PART_DATA]
            if len(data) != 1:
                raise GeminiError(
                    f"* GenerateContentRequest.{snake(part_where)}.data: required oneof field 'data' must have one initialized field"
                )
            if "inlineData" in part:
                check_fields(
                    part["inlineData"], frozenset({"mimeType", "data"}), f"{part_where}.inlineData"
                )
            if "fileData" in part:
                check_fields(
                    part["fileData"], frozenset({"mimeType", "fileUri"}), f"{part_where}.fileData"
                )
            if "functionCall" in part:
                check_fields(
                    part["functionCall"],
                    frozenset({"name", "args", "id"}),
                    f"{part_where}.functionCall",
                )
            if "functionResponse" in part:
                response = part["functionResponse"]
                check_fields(
                    response,
                    frozenset({"name", "response", "id", "willContinue", "scheduling"}),
                    f"{part_where}.functionResponse",
                )
                if not isinstance(response.get("response"), dict) or not response.get("name"):
                    raise GeminiError(
                        f"* GenerateContentRequest.{snake(part_where)}.function_response: name and response are required"
                    )

    def check_schema(self, schema: Any, where: str) -> None:
        check_fields(schema, SCHEMA_FIELDS, where)
        kind = schema.get("type")
        if kind is not None and kind not in SCHEMA_TYPES:
            raise GeminiError(
                f"Invalid value at '{snake(where)}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), \"{kind}\""
            )
        if kind == "OBJECT" and where.endswith(".parameters") and not schema.get("properties"):
            raise GeminiError(
                f"* GenerateContentRequest.{snake(where)}.properties: should be non-empty for OBJECT type\n"
            )
        enum = schema.get("enum")
        if enum is not None and not all(isinstance(value, str) for value in enum):
            raise GeminiError(f"Invalid value at '{snake(where)}.enum': only strings are allowed")
        for name, value in (schema.get("properties") or {}).items():
            self.check_schema(value, f"{where}.properties[{name}]")
        for name in schema.get("required") or ():
            if name not in (schema.get("properties") or {}):
                raise GeminiError(
                    f"* GenerateContentRequest.{snake(where)}.required: property {name} is not defined"
                )
        if "items" in schema:
            self.check_schema(schema["items"], f"{where}.items")
        for index, variant in enumerate(schema.get("anyOf") or ()):
            self.check_schema(variant, f"{where}.anyOf[{index}]")

    @staticmethod
    def check_thinking(model: str, thinking: Any) -> None:
        if thinking is None:
            return
        check_fields(thinking, THINKING_FIELDS, "generationConfig.thinkingConfig")
        kind = MODELS[model]
        if kind == "2.0":
            raise GeminiError("Thinking is not supported for this model.")
        if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
            raise GeminiError("You can only set only one of thinking budget and thinking level.")
        if "thinkingLevel" in thinking:
            if kind != "3":
                raise GeminiError("Thinking level is not supported for this model.")
            if thinking["thinkingLevel"] not in ("low", "high", "LOW", "HIGH"):
                raise GeminiError(
                    "Invalid value at 'generation_config.thinking_config.thinking_level'"
                )
        if thinking.get("thinkingBudget") == 0 and kind == "2.5-pro":
            raise GeminiError("Budget 0 is invalid. This model only works in thinking mode.")

    @staticmethod
    def check_signatures(contents: list[dict[str, Any]]) -> None:
        """Gemini 3: each model step of the current turn must return its first call's signature."""
        current = 0
        for index, content in enumerate(contents):
            if content.get("role") == "user" and any(
                "functionResponse" not in p for p in content["parts"]
            ):
                current = index
        calls_expected = 0
        for index, content in enumerate(contents[current:], start=current):
            calls = [p for p in content["parts"] if "functionCall" in p]
            responses = [p for p in content["parts"] if "functionResponse" in p]
            if responses and len(responses) != calls_expected:
                raise GeminiError(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            calls_expected = len(calls)
            if not calls:
                continue
            signature = calls[0].get("thoughtSignature")
            if signature != SKIP_SIGNATURE and signature != signature_for(
                calls[0]["functionCall"]["name"]
            ):
                raise GeminiError(
                    "Function call is missing a thought_signature in functionCall parts. This is "
                    "required for tools to work correctly, and missing thought_signature may lead "
                    "to degraded model performance. Additional data, function call "
                    f"`{calls[0]['functionCall']['name']}` , position {index + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )

    # --- answering ----------------------------------------------------------------------
    async def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        send: Any,
        scripted: Scripted | None,
    ) -> None:
        try:
            self.check_key(headers)
            match = _PATH.fullmatch(path)
            if method != "POST" or match is None:
                raise GeminiError(f"The requested URL {path} was not found.", 404, "NOT_FOUND")
            model, verb = match["model"], match["method"]
            if MODELS.get(model) is None or (
                verb in ("generateContent", "streamGenerateContent")
            ) == (MODELS[model] == "embedding"):
                raise GeminiError(
                    f"models/{model} is not found for API version v1beta, or is not supported "
                    f"for {verb}. Call ListModels to see the list of available models and their "
                    "supported methods.",
                    404,
                    "NOT_FOUND",
                )
            if verb == "generateContent":
                self.check_generate(model, body)
                await self.send_json(send, 200, self.generate(model, body))
            elif verb == "streamGenerateContent":
                if self.received[-1].path.partition("?")[2] != "alt=sse":
                    raise GeminiError("This fake streams Server-Sent Events only: add ?alt=sse.")
                self.check_generate(model, body)
                await self.send_events(send, self.stream_events(model, body), scripted)
            elif verb == "embedContent":
                check_fields(body, EMBED_FIELDS, "")
                await self.send_json(send, 200, self.embed(model, [body])[0])
            elif verb == "batchEmbedContents":
                check_fields(body, frozenset({"requests"}), "")
                for index, request in enumerate(body["requests"]):
                    check_fields(request, EMBED_FIELDS, f"requests[{index}]")
                    if request.get("model") != f"models/{model}":
                        raise GeminiError(
                            f"Model name in request ({request.get('model')}) does not match the "
                            f"model name in the URL (models/{model})."
                        )
                await self.send_json(send, 200, self.embed(model, body["requests"])[1])
            else:
                raise GeminiError(f"Unknown method {verb}.", 404, "NOT_FOUND")
        except GeminiError as error:
            await self.send_json(send, error.status, error.body())

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        total = 0
        for content in [body.get("systemInstruction"), *body["contents"]]:
            for part in (content or {}).get("parts") or ():
                if "text" in part:
                    total += words(part["text"])
                elif "functionCall" in part or "functionResponse" in part:
                    total += words(orjson.dumps(part).decode())
                else:
                    total += 10  # media
        return total

    def plan(self, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """One candidate's parts and finish reason, deterministic from the request."""
        config = body.get("generationConfig") or {}
        last_parts = body["contents"][-1]["parts"]
        last_text = " ".join(p.get("text", "") for p in last_parts)
        if "unsafe" in last_text:
            return [
                {
                    "finishReason": "SAFETY",
                    "index": 0,
                    "safetyRatings": [
                        {
                            "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                            "probability": "HIGH",
                            "blocked": True,
                        }
                    ],
                }
            ]
        declarations = [
            d for tool in body.get("tools") or () for d in tool.get("functionDeclarations") or ()
        ]
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        responses = [p["functionResponse"] for p in last_parts if "functionResponse" in p]
        parts: list[dict[str, Any]] = []
        if (config.get("thinkingConfig") or {}).get("includeThoughts"):
            parts.append({"text": "Thinking it over.", "thought": True})
        if declarations and calling.get("mode") != "NONE" and not responses:
            name = (calling.get("allowedFunctionNames") or [declarations[0]["name"]])[0]
            call: dict[str, Any] = {"functionCall": {"name": name, "args": {"city": "Paris"}}}
            if MODELS[model] != "2.0":
                call["thoughtSignature"] = signature_for(name)
            return [{"content": {"parts": [*parts, call], "role": "model"}, "finishReason": "STOP"}]
        if responses:
            output = responses[0]["response"]
            text = "The tool said: " + str(output.get("output", orjson.dumps(output).decode()))
        elif config.get("responseMimeType") == "application/json":
            text = '{"answer": "hello", "ok": true}'
        else:
            text = self.reply
        reason = "STOP"
        for stop in config.get("stopSequences") or ():
            if stop in text:
                text = text[: text.index(stop)]
        limit = config.get("maxOutputTokens")
        if limit is not None and words(text) > limit:
            text, reason = " ".join(text.split()[:limit]), "MAX_TOKENS"
        parts.append({"text": text})
        return [{"content": {"parts": parts, "role": "model"}, "finishReason": reason}]

    def thinks(self, model: str, body: dict[str, Any]) -> bool:
        thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        return MODELS[model] not in ("2.0",) and thinking.get("thinkingBudget") != 0

    def usage(
        self, model: str, body: dict[str, Any], candidates: list[dict[str, Any]]
    ) -> dict[str, Any]:
        prompt = self.prompt_tokens(body)
        output = sum(
            words(part.get("text", ""))
            + (
                words(orjson.dumps(part["functionCall"]["args"]).decode())
                if "functionCall" in part
                else 0
            )
            for candidate in candidates
            for part in (candidate.get("content") or {}).get("parts") or ()
            if not part.get("thought")
        )
        thoughts = self.thoughts_tokens if self.thinks(model, body) else 0
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = min(self.cached_tokens, prompt)
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def generate(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        count = (body.get("generationConfig") or {}).get("candidateCount") or 1
        candidates = [{**self.plan(model, body)[0], "index": i} for i in range(count)]
        return {
            "candidates": candidates,
            "usageMetadata": self.usage(model, body, candidates),
            "modelVersion": model,
            "responseId": "fake-gemini-response-1",
        }

    def stream_events(self, model: str, body: dict[str, Any]) -> list[bytes]:
        whole = self.generate(model, body)
        usage = whole["usageMetadata"]
        running = {
            "promptTokenCount": usage["promptTokenCount"],
            "totalTokenCount": usage["promptTokenCount"],
        }
        chunks: list[dict[str, Any]] = []
        for candidate in whole["candidates"]:
            parts = (candidate.get("content") or {}).get("parts") or []
            pieces: list[dict[str, Any]] = []
            for part in parts:
                if "text" in part and not part.get("thought"):
                    split = part["text"].split(" ")
                    pieces += [{"text": w if i == 0 else " " + w} for i, w in enumerate(split)]
                else:
                    pieces.append(part)
            chunks += [
                {
                    "candidates": [
                        {
                            "content": {"parts": [piece], "role": "model"},
                            "index": candidate["index"],
                        }
                    ],
                    "usageMetadata": running,
                    "modelVersion": model,
                    "responseId": whole["responseId"],
                }
                for piece in pieces
            ]
            last = {k: v for k, v in candidate.items() if k != "content"}
            chunks.append(
                {
                    "candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, **last}],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": whole["responseId"],
                }
            )
        if self.stream_error_after is not None:
            overloaded = {
                "code": 503,
                "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE",
            }
            chunks = [*chunks[: self.stream_error_after], {"error": overloaded}]
        return [b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks]

    def embed(
        self, model: str, requests: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        vectors = []
        tokens = 0
        for index, request in enumerate(requests):
            text = " ".join(p.get("text", "") for p in request["content"]["parts"])
            tokens += words(text)
            size = request.get("outputDimensionality") or 8
            vectors.append({"values": [round(0.5 * (index + 1) * (d + 1), 4) for d in range(size)]})
        usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
        single: dict[str, Any] = {"embedding": vectors[0]}
        batch: dict[str, Any] = {"embeddings": vectors}
        if self.embed_usage:
            single["usageMetadata"] = usage
            batch["usageMetadata"] = usage
        return single, batch
