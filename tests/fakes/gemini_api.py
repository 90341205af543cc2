"""A strict fake of the Gemini API (generativelanguage v1beta): generateContent,
streamGenerateContent?alt=sse, embedContent, batchEmbedContents and models.list (GET).

Field names are the REST reference's (and google-genai's to_mldev converters'); anything else is
refused as Google's API refuses it: HTTP 400 INVALID_ARGUMENT, 'Invalid JSON payload received.
Unknown name "x" at 'path': Cannot find field.'. The key travels in x-goog-api-key: missing is
403 PERMISSION_DENIED, wrong is 400 INVALID_ARGUMENT with reason API_KEY_INVALID. Gemini 3
models check thought signatures on the current turn's function calls. Streams use CRLF, as
Google's do. Answers are deterministic (one token per word).
"""

from typing import Any, ClassVar

import orjson

from tests.fakes.gemini_rules import (
    EMBED_FIELDS,
    MODELS,
    PATH,
    GeminiError,
    GeminiRequestRules,
    check_fields,
    signature_for,
    words,
)
from tests.fakes.server import FakeAPI, Scripted


class FakeGemini(GeminiRequestRules, FakeAPI):
    response_headers: ClassVar[dict[str, str]] = {
        "server": "scaffolding on HTTPServer2",
        "server-timing": "gfet4t7; dur=412",
        "x-xss-protection": "0",
    }

    def __init__(self, api_key: str = "fake-gemini-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.cached_tokens = 0  # reported as cachedContentTokenCount (inside promptTokenCount)
        self.extra_prompt_tokens = 0  # added to every prompt's count (a long-context request)
        # The Google Search queries a grounded answer reports (groundingMetadata).
        self.search_queries = ["fake weather berlin", "berlin forecast today"]
        self.thoughts_tokens = 0  # reported as thoughtsTokenCount by thinking models
        self.embed_usage = True  # whether embedding answers carry usageMetadata
        self.reply = "Hello from the fake Gemini, happy to help."
        self.stream_error_after: int | None = None

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
            if method == "GET" and path == "/v1beta/models":
                await self.send_json(send, 200, self.models_list())
                return
            match = PATH.fullmatch(path)
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

    @staticmethod
    def models_list() -> dict[str, Any]:
        """GET /v1beta/models: Model resources (one page; the API pages by 50)."""
        return {
            "models": [
                {
                    "name": f"models/{model}",
                    "version": "001",
                    "displayName": model,
                    "inputTokenLimit": 1_048_576 if kind != "embedding" else 2048,
                    "outputTokenLimit": 65_536 if kind != "embedding" else 1,
                    "supportedGenerationMethods": (
                        ["embedContent"]
                        if kind == "embedding"
                        else ["generateContent", "countTokens"]
                    ),
                }
                for model, kind in MODELS.items()
            ]
        }

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        total = self.extra_prompt_tokens
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
        if any(
            "googleSearch" in tool or "google_search" in tool for tool in body.get("tools") or ()
        ):
            for candidate in candidates:
                candidate["groundingMetadata"] = {
                    "webSearchQueries": list(self.search_queries),
                    "searchEntryPoint": {"renderedContent": "<div>fake</div>"},
                    "groundingChunks": [
                        {"web": {"uri": "https://example.com/weather", "title": "example.com"}}
                    ],
                    "groundingSupports": grounding_supports(candidate),
                }
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


def grounding_supports(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """Each text part's last sentence, supported by the one source, with its offsets in UTF-8
    bytes within its part as Gemini gives them."""
    supports: list[dict[str, Any]] = []
    for number, part in enumerate((candidate.get("content") or {}).get("parts") or ()):
        text = part.get("text")
        if not isinstance(text, str) or part.get("thought") or not text:
            continue
        cited = text.rsplit(". ", 1)[-1]
        end = len(text.encode())
        segment = {
            "partIndex": number,
            "startIndex": end - len(cited.encode()),
            "endIndex": end,
            "text": cited,
        }
        supports.append(
            {
                "segment": segment,
                "groundingChunkIndices": [0],
                "confidenceScores": [0.9],
            }
        )
    return supports
