// The Vercel AI SDK against a TokenByte gateway, driven by tests/clients/test_ai_sdk.py.
// Reads {"url", "apiKey", "cases": [{"id", "provider", "model", "mode", "root"?, "store"?}]} on
// stdin ("store": false is the openai provider's option, its items sent whole) and
// prints {id: {"ok": result, "usage": usage} | {"error": message}} as one JSON line.
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

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
  // The provider's default, the same model as .responses(model): the Responses API.
  "openai-responses": (model, base) => createOpenAI({ baseURL: base, apiKey })(model),
  "openai-compatible": (model, base) =>
    createOpenAICompatible({ name: "tokenbyte", baseURL: base, apiKey }).chatModel(model),
  anthropic: (model, base) => createAnthropic({ baseURL: base, apiKey })(model),
};
const weatherTool = {
  description: "The weather in a city.",
  inputSchema: jsonSchema({
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
  }),
};
const weather = tool(weatherTool);
// "roundtrip": the SDK runs the tool and sends its result back, a second step.
const weatherRun = tool({ ...weatherTool, execute: async ({ city }) => `Sunny in ${city}` });
const PROMPT = "Say hello";
const WEATHER_PROMPT = "What is the weather in Paris?";
const calls = (toolCalls) => toolCalls.map((call) => [call.toolName, call.input]);

// Each mode's result and the usage the SDK reports for the whole call (every step).
async function run({ provider, model, mode, root, store }) {
  const llm = providers[provider](model, root ? url : `${url}/v1`);
  const options = { model: llm, prompt: PROMPT, maxRetries: 0 };
  if (store === false) options.providerOptions = { openai: { store: false } };
  if (mode === "plain") {
    const result = await generateText(options);
    return [result.text, result.totalUsage];
  }
  if (mode === "stream") {
    let failure = null;
    const result = streamText({ ...options, onError: ({ error }) => (failure = error) });
    let text = "";
    for await (const delta of result.textStream) text += delta;
    if (failure) throw failure;
    return [text, await result.totalUsage];
  }
  if (mode === "followup") {
    // A second turn after the first's messages, as a chat keeps its history.
    const first = await generateText(options);
    const messages = [
      { role: "user", content: PROMPT },
      ...first.response.messages,
      { role: "user", content: "Say hello again" },
    ];
    const { prompt, ...rest } = options;
    const result = await generateText({ ...rest, messages });
    return [[first.text, result.text], result.totalUsage];
  }
  if (mode === "roundtrip") {
    const result = await generateText({
      ...options,
      prompt: WEATHER_PROMPT,
      tools: { get_weather: weatherRun },
      stopWhen: stepCountIs(2),
    });
    const answer = { calls: calls(result.steps[0].toolCalls), text: result.text };
    return [answer, result.totalUsage];
  }
  const result = await generateText({
    ...options,
    prompt: WEATHER_PROMPT,
    tools: { get_weather: weather },
  });
  return [calls(result.toolCalls), result.totalUsage];
}

const results = {};
for (const entry of input.cases) {
  try {
    const [ok, usage] = await run(entry);
    results[entry.id] = { ok, usage };
  } catch (error) {
    results[entry.id] = { error: String(error?.message ?? error) };
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
