// Drives the proxy's /v1/chat/completions with the official OpenAI Node SDK.
//
// Run by tests/chat_sdk.rs, which starts the fake Codex backend and the proxy, scripts the fake,
// and runs one scenario per test:
//
//     OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=... \
//         EXPECTED_TEXT=... node tests/sdk/node/chat_sdk.mjs <scenario>
//
// The Node SDK hands back the JSON it received without checking it, so every completion and chunk
// is also checked against the fields the SDK's TypeScript types declare required (a field typed
// `T | null` must be there, as null at least). Streams are read with the SDK's own helpers
// (`chat.completions.stream`, `runTools`), whose accumulated final completion is what callers use.
// Prints one line per check; exits non-zero on the first failure.

import process from 'node:process';

import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { VERSION } from 'openai/version';
import { z } from 'zod';

const MODEL = 'gpt-5.5';
const QUESTION = 'What is the weather in Paris?';
const FINISH_REASONS = ['stop', 'length', 'tool_calls', 'content_filter', 'function_call'];

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is not set`);
  }
  return value;
}

function client() {
  return new OpenAI({
    baseURL: env('OPENAI_BASE_URL'),
    apiKey: env('OPENAI_API_KEY'),
    maxRetries: 0,
    timeout: 30_000,
  });
}

function show(value) {
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value, null, 0);
}

function check(condition, description, detail) {
  if (!condition) {
    throw new Error(detail === undefined ? description : `${description}: ${show(detail)}`);
  }
  console.log(`ok: ${description}`);
}

/** Where `object` misses a field its SDK type requires or has one of the wrong type. */
function shapeProblems(object, fields, path) {
  const problems = [];
  for (const [name, test] of Object.entries(fields)) {
    if (!(name in object)) {
      problems.push(`${path}.${name} is missing (got ${show(object)})`);
    } else if (!test(object[name])) {
      problems.push(`${path}.${name} has the wrong type or value: ${show(object[name])}`);
    }
  }
  return problems;
}

const isString = (v) => typeof v === 'string';
const isStringOrNull = (v) => v === null || typeof v === 'string';
const isInteger = (v) => Number.isInteger(v);
const isArray = (v) => Array.isArray(v);
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function usageProblems(usage, path) {
  if (usage === undefined || usage === null) return [];
  return shapeProblems(
    usage,
    { prompt_tokens: isInteger, completion_tokens: isInteger, total_tokens: isInteger },
    path,
  );
}

/** `ChatCompletion`'s required fields, recursively. */
function completionProblems(completion) {
  const problems = shapeProblems(
    completion,
    {
      id: isString,
      choices: isArray,
      created: isInteger,
      model: isString,
      object: (v) => v === 'chat.completion',
    },
    'ChatCompletion',
  );
  (completion.choices ?? []).forEach((choice, i) => {
    const path = `ChatCompletion.choices[${i}]`;
    problems.push(
      ...shapeProblems(
        choice,
        {
          finish_reason: (v) => FINISH_REASONS.includes(v),
          index: isInteger,
          logprobs: (v) => v === null || isObject(v),
          message: isObject,
        },
        path,
      ),
    );
    if (!isObject(choice.message)) return;
    problems.push(
      ...shapeProblems(
        choice.message,
        { content: isStringOrNull, refusal: isStringOrNull, role: (v) => v === 'assistant' },
        `${path}.message`,
      ),
    );
    (choice.message.tool_calls ?? []).forEach((call, j) => {
      const callPath = `${path}.message.tool_calls[${j}]`;
      problems.push(
        ...shapeProblems(call, { id: isString, type: (v) => v === 'function', function: isObject }, callPath),
      );
      if (isObject(call.function)) {
        problems.push(
          ...shapeProblems(call.function, { name: isString, arguments: isString }, `${callPath}.function`),
        );
      }
    });
  });
  problems.push(...usageProblems(completion.usage, 'ChatCompletion.usage'));
  return problems;
}

/** `ChatCompletionChunk`'s required fields, recursively. */
function chunkProblems(chunk, n) {
  const at = `ChatCompletionChunk #${n}`;
  const problems = shapeProblems(
    chunk,
    {
      id: isString,
      choices: isArray,
      created: isInteger,
      model: isString,
      object: (v) => v === 'chat.completion.chunk',
    },
    at,
  );
  (chunk.choices ?? []).forEach((choice, i) => {
    problems.push(
      ...shapeProblems(
        choice,
        {
          delta: isObject,
          finish_reason: (v) => v === null || FINISH_REASONS.includes(v),
          index: isInteger,
        },
        `${at}.choices[${i}]`,
      ),
    );
    (choice.delta?.tool_calls ?? []).forEach((call, j) => {
      problems.push(...shapeProblems(call, { index: isInteger }, `${at}.choices[${i}].delta.tool_calls[${j}]`));
    });
  });
  problems.push(...usageProblems(chunk.usage, `${at}.usage`));
  return problems;
}

function checkCompletionShape(completion, description) {
  const problems = completionProblems(completion);
  check(problems.length === 0, `${description} has every field the SDK's ChatCompletion type requires`, problems);
}

function checkUsage(usage, description) {
  check(usage !== undefined && usage !== null, `${description}: usage is present`);
  check(
    usage.prompt_tokens > 0 && usage.completion_tokens > 0,
    `${description}: prompt_tokens and completion_tokens > 0`,
    usage,
  );
  check(
    usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
    `${description}: total_tokens = prompt_tokens + completion_tokens`,
    usage,
  );
  check(
    isInteger(usage.prompt_tokens_details?.cached_tokens),
    `${description}: prompt_tokens_details.cached_tokens is an integer`,
    usage,
  );
  check(
    isInteger(usage.completion_tokens_details?.reasoning_tokens),
    `${description}: completion_tokens_details.reasoning_tokens is an integer`,
    usage,
  );
}

/** `chat.completions.create` (not streaming), checked like every completion here. */
async function createChecked(sdk, description, params) {
  const { data: completion, response } = await sdk.chat.completions
    .create({ model: MODEL, ...params })
    .withResponse();
  check(response.status === 200, `${description}: status 200`, response.status);
  checkCompletionShape(completion, description);
  check(completion.id.startsWith('chatcmpl-'), `${description}: id starts with chatcmpl-`, completion.id);
  check(completion.model === MODEL, `${description}: model echoes the request`, completion.model);
  check(completion.choices.length === 1, `${description}: one choice`, completion.choices);
  return completion;
}

async function text() {
  const expected = env('EXPECTED_TEXT');
  const completion = await createChecked(client(), 'the completion', {
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Say hello.' },
    ],
  });
  const choice = completion.choices[0];
  check(choice.message.content === expected, 'content is the scripted text', choice.message.content);
  check(choice.finish_reason === 'stop', 'finish_reason is stop', choice.finish_reason);
  check(!choice.message.tool_calls?.length, 'no tool calls', choice.message.tool_calls);
  checkUsage(completion.usage, 'the completion');
}

async function textStream() {
  const expected = env('EXPECTED_TEXT');
  const stream = await client().chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'Say hello.' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  console.log(`${chunks.length} chunks`);
  check(chunks.length >= 3, 'the stream has chunks', chunks.length);
  const problems = chunks.flatMap((chunk, n) => chunkProblems(chunk, n));
  check(problems.length === 0, `all ${chunks.length} chunks have every field the SDK's ChatCompletionChunk type requires`, problems);
  check(new Set(chunks.map((c) => c.id)).size === 1, 'one id for the stream', chunks.map((c) => c.id));
  check(new Set(chunks.map((c) => c.created)).size === 1, 'one created for the stream');
  check(chunks[0].choices[0]?.delta.role === 'assistant', 'first delta carries the role', chunks[0]);
  const withChoices = chunks.filter((c) => c.choices.length > 0);
  const joined = withChoices.map((c) => c.choices[0].delta.content ?? '').join('');
  check(joined === expected, 'joined content deltas are the scripted text', joined);
  const reasons = withChoices.map((c) => c.choices[0].finish_reason).filter((r) => r);
  check(reasons.length === 1 && reasons[0] === 'stop', 'exactly one finish_reason, stop', reasons);
  const last = chunks.at(-1);
  check(last.choices.length === 0, 'the last chunk has empty choices (the include_usage chunk)', last.choices);
  checkUsage(last.usage, 'the last chunk');
  check(
    chunks.slice(0, -1).every((c) => c.usage === undefined || c.usage === null),
    'only the last chunk carries usage',
    chunks.slice(0, -1).map((c) => c.usage),
  );
}

async function streamHelper() {
  const expected = env('EXPECTED_TEXT');
  const stream = client().chat.completions.stream({
    model: MODEL,
    messages: [{ role: 'user', content: 'Say hello.' }],
    stream_options: { include_usage: true },
  });
  const deltas = [];
  const done = [];
  stream.on('content.delta', ({ delta }) => deltas.push(delta));
  stream.on('content.done', ({ content }) => done.push(content));
  const final = await stream.finalChatCompletion();
  check(deltas.join('') === expected, 'content.delta events are the scripted text', deltas.join(''));
  check(done.length === 1 && done[0] === expected, 'one content.done event with the whole text', done);
  checkCompletionShape(final, 'the accumulated final completion');
  const choice = final.choices[0];
  check(choice.message.content === expected, 'finalChatCompletion() content is the whole text', choice.message.content);
  check(choice.finish_reason === 'stop', 'final finish_reason is stop', choice.finish_reason);
  check((await stream.finalContent()) === expected, 'finalContent() is the whole text');
  checkUsage(final.usage, 'the final completion');
}

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city.',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    },
  },
};

const WeatherArgs = z.object({ city: z.string() });

function checkToolCall(choice, description) {
  const callId = env('EXPECTED_CALL_ID');
  const args = JSON.parse(env('EXPECTED_ARGUMENTS'));
  check(choice.finish_reason === 'tool_calls', `${description}: finish_reason is tool_calls`, choice.finish_reason);
  check(choice.message.content === null, `${description}: content is null`, choice.message.content);
  const calls = choice.message.tool_calls ?? [];
  check(calls.length === 1, `${description}: one tool call`, calls);
  const [call] = calls;
  check(call.type === 'function', `${description}: the call is a function call`, call.type);
  check(call.id === callId, `${description}: the call's id is the scripted call_id`, call.id);
  check(call.function.name === 'get_weather', `${description}: the call names get_weather`, call.function.name);
  check(
    JSON.stringify(JSON.parse(call.function.arguments)) === JSON.stringify(args),
    `${description}: the arguments are the scripted JSON`,
    call.function.arguments,
  );
  return call;
}

async function toolLoop() {
  const expected = env('EXPECTED_TEXT');
  const sdk = client();
  const messages = [{ role: 'user', content: QUESTION }];
  const first = await createChecked(sdk, 'turn 1', { messages, tools: [WEATHER_TOOL] });
  const call = checkToolCall(first.choices[0], 'turn 1');
  // The SDK's own message object goes back in the history, as the SDK's docs do it.
  messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' });
  const second = await createChecked(sdk, 'turn 2', { messages, tools: [WEATHER_TOOL] });
  const choice = second.choices[0];
  check(choice.message.content === expected, 'turn 2: content is the scripted answer', choice.message.content);
  check(choice.finish_reason === 'stop', 'turn 2: finish_reason is stop', choice.finish_reason);
  check(!choice.message.tool_calls?.length, 'turn 2: no tool calls', choice.message.tool_calls);
}

async function toolLoopStream() {
  const expected = env('EXPECTED_TEXT');
  const sdk = client();
  // A zod tool is strict, so the helper also parses the streamed arguments.
  const tools = [zodFunction({ name: 'get_weather', parameters: WeatherArgs, description: 'The current weather.' })];
  const messages = [{ role: 'user', content: QUESTION }];
  const stream = sdk.chat.completions.stream({ model: MODEL, messages, tools });
  const argumentsDone = [];
  stream.on('tool_calls.function.arguments.done', (event) => argumentsDone.push(event));
  const first = await stream.finalChatCompletion();
  checkCompletionShape(first, 'turn 1 (accumulated from deltas)');
  const call = checkToolCall(first.choices[0], 'turn 1 (accumulated from deltas)');
  check(call.function.parsed_arguments?.city === 'Paris', 'turn 1: the helper parsed the arguments', call.function);
  check(
    argumentsDone.length === 1 &&
      argumentsDone[0].name === 'get_weather' &&
      argumentsDone[0].arguments === call.function.arguments,
    'turn 1: one tool_calls.function.arguments.done event with the whole arguments',
    argumentsDone,
  );
  messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' });
  const second = sdk.chat.completions.stream({
    model: MODEL,
    messages,
    tools,
    stream_options: { include_usage: true },
  });
  const deltas = [];
  second.on('content.delta', ({ delta }) => deltas.push(delta));
  const answer = await second.finalChatCompletion();
  checkCompletionShape(answer, 'turn 2 (accumulated from deltas)');
  const choice = answer.choices[0];
  check(deltas.join('') === expected, 'turn 2: content.delta events are the scripted answer', deltas.join(''));
  check(choice.message.content === expected, 'turn 2: final content is the scripted answer', choice.message.content);
  check(choice.finish_reason === 'stop', 'turn 2: finish_reason is stop', choice.finish_reason);
  check(!choice.message.tool_calls?.length, 'turn 2: no tool calls', choice.message.tool_calls);
  checkUsage(answer.usage, 'turn 2');
}

async function runTools() {
  const expected = env('EXPECTED_TEXT');
  const callId = env('EXPECTED_CALL_ID');
  const cities = [];
  const runner = client().chat.completions.runTools({
    model: MODEL,
    stream: true,
    messages: [{ role: 'user', content: QUESTION }],
    tools: [
      zodFunction({
        name: 'get_weather',
        parameters: WeatherArgs,
        function: ({ city }) => {
          cities.push(city);
          return 'sunny';
        },
      }),
    ],
  });
  const content = await runner.finalContent();
  check(JSON.stringify(cities) === '["Paris"]', 'runTools called get_weather once, for Paris', cities);
  check(content === expected, 'finalContent() is the scripted answer', content);
  const messages = runner.messages;
  const roles = messages.map((m) => m.role);
  check(
    JSON.stringify(roles) === JSON.stringify(['user', 'assistant', 'tool', 'assistant']),
    'the runner kept user, assistant (call), tool, assistant (answer)',
    roles,
  );
  check(messages[1].tool_calls?.[0]?.id === callId, "the assistant's call has the scripted id", messages[1]);
  check(messages[2].tool_call_id === callId, 'the tool message answers that id', messages[2]);
  const completions = runner.allChatCompletions();
  check(completions.length === 2, 'two chat completions', completions.length);
  completions.forEach((completion, i) => checkCompletionShape(completion, `accumulated completion ${i + 1}`));
}

async function structuredOutput() {
  const expected = JSON.parse(env('EXPECTED_TEXT'));
  const Animal = z.object({ name: z.string(), legs: z.number().int() });
  const completion = await client().chat.completions.parse({
    model: MODEL,
    messages: [{ role: 'user', content: 'Name an animal and count its legs.' }],
    response_format: zodResponseFormat(Animal, 'Animal'),
  });
  checkCompletionShape(completion, 'the completion');
  const { message, finish_reason } = completion.choices[0];
  check(finish_reason === 'stop', 'finish_reason is stop', finish_reason);
  check(message.refusal === null, 'refusal is null', message.refusal);
  check(message.parsed !== null && typeof message.parsed === 'object', 'message.parsed is an object', message.parsed);
  check(message.parsed.name === expected.name, 'parsed.name is the scripted one', message.parsed.name);
  check(message.parsed.legs === expected.legs, 'parsed.legs is the scripted one', message.parsed.legs);
}

async function image() {
  const expected = env('EXPECTED_TEXT');
  const completion = await createChecked(client(), 'the completion', {
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in this picture?' },
          { type: 'image_url', image_url: { url: env('IMAGE_URL'), detail: 'low' } },
        ],
      },
    ],
  });
  check(completion.choices[0].message.content === expected, 'content is the scripted answer');
}

async function rateLimit() {
  const retryAfter = env('EXPECTED_RETRY_AFTER');
  const sdk = client();
  const messages = [{ role: 'user', content: 'Say hello.' }];
  const calls = [
    ['non-streaming', () => sdk.chat.completions.create({ model: MODEL, messages })],
    [
      'streaming',
      async () => {
        const stream = await sdk.chat.completions.create({ model: MODEL, messages, stream: true });
        for await (const chunk of stream) {
          void chunk;
        }
      },
    ],
  ];
  for (const [mode, call] of calls) {
    let caught;
    try {
      await call();
    } catch (error) {
      caught = error;
    }
    check(caught instanceof OpenAI.RateLimitError, `${mode}: a usage limit raises OpenAI.RateLimitError`, String(caught));
    check(caught.status === 429, `${mode}: the error has status 429`, caught.status);
    check(caught.code === 'usage_limit_reached', `${mode}: error code is usage_limit_reached`, caught.code);
    check(
      caught.headers?.get('retry-after') === retryAfter,
      `${mode}: Retry-After is the time until the limit resets`,
      caught.headers?.get('retry-after'),
    );
    check(Boolean(caught.message), `${mode}: the error has a message`, caught.message);
    console.log(`   (${caught.message})`);
  }
}

const SCENARIOS = {
  text,
  text_stream: textStream,
  stream_helper: streamHelper,
  tool_loop: toolLoop,
  tool_loop_stream: toolLoopStream,
  run_tools: runTools,
  structured_output: structuredOutput,
  image,
  rate_limit: rateLimit,
};

async function main() {
  const scenario = process.argv[2];
  if (process.argv.length !== 3 || !(scenario in SCENARIOS)) {
    throw new Error(`usage: node chat_sdk.mjs <${Object.keys(SCENARIOS).join('|')}>`);
  }
  console.log(`openai ${VERSION}, node ${process.version}, scenario ${scenario}`);
  await SCENARIOS[scenario]();
  console.log(`passed: ${scenario}`);
}

main().catch((error) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
