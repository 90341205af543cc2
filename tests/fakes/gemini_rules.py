"""Google's Gemini API as the fake enforces it: the fields, parts, schemas and key it accepts, and
the errors Google returns for the rest (tests/fakes/gemini_api.py answers)."""

import hashlib
import re
from typing import Any

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
PATH = re.compile(r"/v1beta/models/(?P<model>[^/:]+):(?P<method>\w+)")


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


class GeminiRequestRules:
    """The requests Gemini's API accepts; the fake's handler calls these before answering."""

    api_key: str  # the one key the fake accepts

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
