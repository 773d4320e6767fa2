// The official OpenAI Node SDK as an application uses it: only baseURL and the key changed,
// default retries. Prints one JSON line for tests/openai_sdk.rs.
//   node openai_node_client.mjs <scenario> <base_url> <key>
// Scenarios: `refused` — one chat completion that the server refuses; prints the error the
// SDK raised and how long the call took (the SDK's own retries included). `echo` — the first
// call of docs/openai.md: the built-in `echo-chat` model, plain and streamed.
import OpenAI from 'openai';
import { randomUUID } from 'node:crypto';

const [scenario, baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey });

if (scenario === 'refused') {
  const started = Date.now();
  try {
    await client.chat.completions.create(
      { model: 'chat', messages: [{ role: 'user', content: 'hello' }], max_tokens: 20000 },
      { headers: { 'Idempotency-Key': randomUUID() } },
    );
    console.log(JSON.stringify({ ok: true, elapsed_ms: Date.now() - started }));
  } catch (error) {
    console.log(JSON.stringify({
      ok: false,
      status: error.status ?? null,
      code: error.code ?? null,
      // The `error` object of OpenAI's shape, where our `limit` rides along.
      limit: error.error?.limit ?? null,
      type: error.constructor.name,
      elapsed_ms: Date.now() - started,
    }));
  }
} else if (scenario === 'echo') {
  const messages = [{ role: 'user', content: 'Say hello' }];
  const completion = await client.chat.completions.create(
    { model: 'echo-chat', messages },
    { headers: { 'Idempotency-Key': randomUUID() } },
  );
  let streamed = '';
  const stream = await client.chat.completions.create(
    { model: 'echo-chat', messages, stream: true },
    { headers: { 'Idempotency-Key': randomUUID() } },
  );
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.delta?.content ?? '';
  }
  console.log(JSON.stringify({ content: completion.choices[0].message.content, streamed, visa: completion.visa }));
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
