// Drives `mambalm serve` with OpenAI's own Node client (npm `openai`): models, completions
// (plain, streamed, echo + logprobs), chat (plain, streamed), and a bad request surfacing as
// the client's APIError with the right status. Run by openai_client.sh.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(process.env.NODE_PATH + "/");
const OpenAI = require("openai").default ?? require("openai");
const client = new OpenAI({ baseURL: process.env.MAMBALM_SERVE_URL, apiKey: "unused", maxRetries: 0, timeout: 60000 });

async function main() {
  const models = await client.models.list();
  const model = models.data[0].id;
  assert.equal(models.data.length, 1);

  const whole = await client.completions.create({ model, prompt: "Hello", max_tokens: 10, temperature: 0, ignore_eos: true });
  assert.equal(whole.choices[0].finish_reason, "length");
  assert.equal(whole.usage.completion_tokens, 10);

  let streamed = "";
  const stream = await client.completions.create({ model, prompt: "Hello", max_tokens: 10, temperature: 0, ignore_eos: true, stream: true });
  for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
  assert.equal(streamed, whole.choices[0].text, "streamed text equals the unstreamed text");

  const echo = await client.completions.create({ model, prompt: "The end", max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
  const lp = echo.choices[0].logprobs;
  assert.equal(echo.choices[0].text, "The end");
  assert.equal(lp.token_logprobs.length, 7);
  assert.equal(lp.token_logprobs[0], null);
  assert.ok(lp.token_logprobs.slice(1).every((x) => x <= 0));

  const messages = [{ role: "system", content: "You are terse." }, { role: "user", content: "Hi there" }];
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
  assert.equal(chat.choices[0].message.role, "assistant");
  let chatText = "";
  let role = "";
  const chatStream = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, stream: true });
  for await (const chunk of chatStream) {
    role ||= chunk.choices[0]?.delta?.role ?? "";
    chatText += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(role, "assistant");
  assert.equal(chatText, chat.choices[0].message.content, "streamed chat equals the unstreamed chat");

  await assert.rejects(
    client.completions.create({ model, prompt: "x", max_tokens: 100000 }),
    (e) => e instanceof OpenAI.APIError && e.status === 400 && /maximum context length/.test(e.message),
  );
  console.log(`openai client: completions, streaming, echo logprobs, chat and errors OK (model ${model}; ` +
              `completion ${JSON.stringify(whole.choices[0].text)})`);
}

main().catch((e) => {
  console.error("FAILED:", e);
  process.exit(1);
});
