// The Vercel AI SDK against a TokenByte gateway, driven by tests/clients/test_ai_sdk.py.
// Reads {"url", "apiKey", "cases": [{"id", "provider", "model", "mode", "root"?}]} on stdin and
// prints {id: {"ok": result} | {"error": message}} as one JSON line.
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, streamText, tool } from "ai";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));
const { url, apiKey } = input;

// Each provider's documented base URL is the API root with /v1, as for OpenAI and Anthropic;
// a case with "root" gives the server's root instead, the mistake the gateway names.
const providers = {
  openai: (model, base) => createOpenAI({ baseURL: base, apiKey }).chat(model),
  "openai-compatible": (model, base) =>
    createOpenAICompatible({ name: "tokenbyte", baseURL: base, apiKey }).chatModel(model),
  anthropic: (model, base) => createAnthropic({ baseURL: base, apiKey })(model),
};
const weather = tool({
  description: "The weather in a city.",
  inputSchema: jsonSchema({
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
  }),
});
const PROMPT = "Say hello";

async function run({ provider, model, mode, root }) {
  const llm = providers[provider](model, root ? url : `${url}/v1`);
  const options = { model: llm, prompt: PROMPT, maxRetries: 0 };
  if (mode === "plain") return (await generateText(options)).text;
  if (mode === "stream") {
    let failure = null;
    const result = streamText({ ...options, onError: ({ error }) => (failure = error) });
    let text = "";
    for await (const delta of result.textStream) text += delta;
    if (failure) throw failure;
    return text;
  }
  const result = await generateText({
    ...options,
    prompt: "What is the weather in Paris?",
    tools: { get_weather: weather },
  });
  return result.toolCalls.map((call) => [call.toolName, call.input]);
}

const results = {};
for (const entry of input.cases) {
  try {
    results[entry.id] = { ok: await run(entry) };
  } catch (error) {
    results[entry.id] = { error: String(error?.message ?? error) };
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
