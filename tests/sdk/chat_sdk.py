"""Drives the proxy's /v1/chat/completions with the official OpenAI Python SDK.

Run by tests/chat_sdk.rs, which starts the fake Codex backend and the proxy, scripts the fake,
and runs one scenario per test:

    OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=... \
        EXPECTED_TEXT=... python3 tests/sdk/chat_sdk.py <scenario>

The SDK builds its objects without validating them, so a field the proxy leaves out or sends with
the wrong type would only surface when a caller reads it. Every completion and every raw chunk is
therefore also validated against the SDK's own pydantic model. Streams are read with the SDK's
stream helper (`client.chat.completions.stream`), whose accumulated final completion is what
callers use. Prints one line per check; exits non-zero on the first failure.
"""

import json

import openai
import pydantic
from sdk_checks import check, client, env, run
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage

MODEL = "gpt-5.5"
QUESTION = "What is the weather in Paris?"




def schema_problems(model, data):
    """What the SDK's pydantic `model` rejects in `data`, as `path: message` lines."""
    try:
        model.model_validate(data)
        return []
    except pydantic.ValidationError as error:
        return [
            f"{model.__name__}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r:.120})"
            for e in error.errors()
        ]


def check_schema(model, data, description):
    problems = schema_problems(model, data)
    check(not problems, f"{description} matches the SDK's {model.__name__} schema", "\n".join(problems))


def check_usage(usage, description):
    check(usage is not None, f"{description}: usage is present")
    check(
        usage.prompt_tokens > 0 and usage.completion_tokens > 0,
        f"{description}: prompt_tokens and completion_tokens > 0",
        usage,
    )
    check(
        usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
        f"{description}: total_tokens = prompt_tokens + completion_tokens",
        usage,
    )
    check(
        usage.prompt_tokens_details is not None and isinstance(usage.prompt_tokens_details.cached_tokens, int),
        f"{description}: prompt_tokens_details.cached_tokens is an integer",
        usage.prompt_tokens_details,
    )
    check(
        usage.completion_tokens_details is not None
        and isinstance(usage.completion_tokens_details.reasoning_tokens, int),
        f"{description}: completion_tokens_details.reasoning_tokens is an integer",
        usage.completion_tokens_details,
    )


def create_checked(sdk, description, **params):
    """`chat.completions.create` (not streaming) through the raw-response wrapper, so the JSON the
    proxy sent is validated against the SDK's model before the parsed object is returned."""
    raw = sdk.chat.completions.with_raw_response.create(model=MODEL, **params)
    check(raw.status_code == 200, f"{description}: status 200", raw.status_code)
    check_schema(ChatCompletion, raw.http_response.json(), description)
    completion = raw.parse()
    check(isinstance(completion, ChatCompletion), f"{description}: parses to a ChatCompletion", type(completion))
    check(completion.object == "chat.completion", f"{description}: object is chat.completion", completion.object)
    check(completion.id.startswith("chatcmpl-"), f"{description}: id starts with chatcmpl-", completion.id)
    check(completion.model == MODEL, f"{description}: model echoes the request", completion.model)
    check(len(completion.choices) == 1, f"{description}: one choice", completion.choices)
    message = completion.choices[0].message
    check(isinstance(message, ChatCompletionMessage), f"{description}: message is a ChatCompletionMessage")
    check(message.role == "assistant", f"{description}: role is assistant", message.role)
    return completion


def text():
    expected = env("EXPECTED_TEXT")
    completion = create_checked(
        client(),
        "the completion",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
    )
    choice = completion.choices[0]
    check(choice.message.content == expected, "content is the scripted text", repr(choice.message.content))
    check(choice.finish_reason == "stop", "finish_reason is stop", choice.finish_reason)
    check(not choice.message.tool_calls, "no tool calls", choice.message.tool_calls)
    check_usage(completion.usage, "the completion")


def text_stream():
    expected = env("EXPECTED_TEXT")
    stream = client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    print(f"{len(chunks)} chunks")
    check(len(chunks) >= 3, "the stream has chunks", len(chunks))
    problems = [p for chunk in chunks for p in schema_problems(ChatCompletionChunk, chunk.to_dict())]
    check(not problems, f"all {len(chunks)} chunks match the SDK's ChatCompletionChunk schema", "\n".join(problems))
    check(
        all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks),
        "chunks are ChatCompletionChunk",
        {type(chunk) for chunk in chunks},
    )
    check(
        all(chunk.object == "chat.completion.chunk" for chunk in chunks),
        "object is chat.completion.chunk",
        [chunk.object for chunk in chunks],
    )
    check(len({chunk.id for chunk in chunks}) == 1, "one id for the stream", {chunk.id for chunk in chunks})
    check(len({chunk.created for chunk in chunks}) == 1, "one created for the stream")
    check(chunks[0].choices[0].delta.role == "assistant", "first delta carries the role", chunks[0].choices[0].delta)
    with_choices = [chunk for chunk in chunks if chunk.choices]
    joined = "".join(chunk.choices[0].delta.content or "" for chunk in with_choices)
    check(joined == expected, "joined content deltas are the scripted text", repr(joined))
    reasons = [chunk.choices[0].finish_reason for chunk in with_choices if chunk.choices[0].finish_reason]
    check(reasons == ["stop"], "exactly one finish_reason, stop", reasons)
    last = chunks[-1]
    check(last.choices == [], "the last chunk has empty choices (the include_usage chunk)", last.choices)
    check_usage(last.usage, "the last chunk")
    check(
        all(chunk.usage is None for chunk in chunks[:-1]),
        "only the last chunk carries usage",
        [chunk.usage for chunk in chunks[:-1]],
    )


def stream_helper():
    expected = env("EXPECTED_TEXT")
    with client().chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        stream_options={"include_usage": True},
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    kinds = sorted({event.type for event in events})
    print(f"event types: {kinds}")
    deltas = [event.delta for event in events if event.type == "content.delta"]
    check("".join(deltas) == expected, "content.delta events are the scripted text", repr("".join(deltas)))
    done = [event for event in events if event.type == "content.done"]
    check(
        len(done) == 1 and done[0].content == expected,
        "one content.done event with the whole text",
        [event.content for event in done],
    )
    check(final.object == "chat.completion", "the final completion is a chat.completion", final.object)
    choice = final.choices[0]
    check(choice.message.content == expected, "get_final_completion() content is the whole text", repr(choice.message.content))
    check(choice.message.role == "assistant", "final role is assistant", choice.message.role)
    check(choice.finish_reason == "stop", "final finish_reason is stop", choice.finish_reason)
    check_usage(final.usage, "the final completion")
    check_schema(ChatCompletion, final.model_dump(), "the accumulated final completion")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


class GetWeather(pydantic.BaseModel):
    """The current weather in a city."""

    city: str


def check_tool_call(message, finish_reason, description):
    call_id = env("EXPECTED_CALL_ID")
    arguments = json.loads(env("EXPECTED_ARGUMENTS"))
    check(finish_reason == "tool_calls", f"{description}: finish_reason is tool_calls", finish_reason)
    # As in the non-streaming answer, and as the OpenAI API streams a call-only answer (the role
    # chunk says `content: null`): a caller tells text from calls by `content is None`.
    check(message.content is None, f"{description}: content is None", repr(message.content))
    calls = message.tool_calls or []
    check(len(calls) == 1, f"{description}: one tool call", calls)
    call = calls[0]
    check(call.type == "function", f"{description}: the call is a function call", call.type)
    check(call.id == call_id, f"{description}: the call's id is the scripted call_id", call.id)
    check(call.function.name == "get_weather", f"{description}: the call names get_weather", call.function.name)
    check(
        json.loads(call.function.arguments) == arguments,
        f"{description}: the arguments are the scripted JSON",
        call.function.arguments,
    )
    return call


def tool_loop():
    expected = env("EXPECTED_TEXT")
    sdk = client()
    messages = [{"role": "user", "content": QUESTION}]
    first = create_checked(sdk, "turn 1", messages=messages, tools=[WEATHER_TOOL])
    call = check_tool_call(first.choices[0].message, first.choices[0].finish_reason, "turn 1")
    # The SDK's own message object goes back in the history, as the SDK's docs do it.
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = create_checked(sdk, "turn 2", messages=messages, tools=[WEATHER_TOOL])
    choice = second.choices[0]
    check(choice.message.content == expected, "turn 2: content is the scripted answer", repr(choice.message.content))
    check(choice.finish_reason == "stop", "turn 2: finish_reason is stop", choice.finish_reason)
    check(not choice.message.tool_calls, "turn 2: no tool calls", choice.message.tool_calls)


def tool_loop_stream():
    expected = env("EXPECTED_TEXT")
    sdk = client()
    # A pydantic tool is strict, so the helper also parses the streamed arguments.
    tools = [openai.pydantic_function_tool(GetWeather, name="get_weather")]
    messages = [{"role": "user", "content": QUESTION}]
    with sdk.chat.completions.stream(model=MODEL, messages=messages, tools=tools) as stream:
        events = list(stream)
        first = stream.get_final_completion()
    print(f"turn 1 event types: {sorted({event.type for event in events})}")
    print(f"turn 1 deltas: {[c.choices[0].delta.to_dict() for c in (e.chunk for e in events if e.type == 'chunk') if c.choices]}")
    choice = first.choices[0]
    call = check_tool_call(choice.message, choice.finish_reason, "turn 1 (accumulated from deltas)")
    check(
        isinstance(call.function.parsed_arguments, GetWeather) and call.function.parsed_arguments.city == "Paris",
        "turn 1: the helper parsed the arguments into the tool's model",
        call.function.parsed_arguments,
    )
    done = [event for event in events if event.type == "tool_calls.function.arguments.done"]
    check(
        len(done) == 1 and done[0].name == "get_weather" and done[0].arguments == call.function.arguments,
        "turn 1: one tool_calls.function.arguments.done event with the whole arguments",
        done,
    )
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    with sdk.chat.completions.stream(
        model=MODEL, messages=messages, tools=tools, stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        second = stream.get_final_completion()
    choice = second.choices[0]
    check("".join(deltas) == expected, "turn 2: content.delta events are the scripted answer", repr("".join(deltas)))
    check(choice.message.content == expected, "turn 2: final content is the scripted answer", repr(choice.message.content))
    check(choice.finish_reason == "stop", "turn 2: finish_reason is stop", choice.finish_reason)
    check(not choice.message.tool_calls, "turn 2: no tool calls", choice.message.tool_calls)
    check_usage(second.usage, "turn 2")


class Animal(pydantic.BaseModel):
    name: str
    legs: int


def structured_output():
    expected = json.loads(env("EXPECTED_TEXT"))
    completion = client().chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Name an animal and count its legs."}],
        response_format=Animal,
    )
    message = completion.choices[0].message
    check(completion.choices[0].finish_reason == "stop", "finish_reason is stop", completion.choices[0].finish_reason)
    check(message.refusal is None, "no refusal", message.refusal)
    check(isinstance(message.parsed, Animal), "message.parsed is the response_format model", type(message.parsed))
    check(message.parsed.name == expected["name"], "parsed.name is the scripted one", message.parsed.name)
    check(message.parsed.legs == expected["legs"], "parsed.legs is the scripted one", message.parsed.legs)


def image():
    expected = env("EXPECTED_TEXT")
    completion = create_checked(
        client(),
        "the completion",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": env("IMAGE_URL"), "detail": "low"}},
                ],
            }
        ],
    )
    check(completion.choices[0].message.content == expected, "content is the scripted answer")


def rate_limit():
    retry_after = env("EXPECTED_RETRY_AFTER")
    sdk = client()
    messages = [{"role": "user", "content": "Say hello."}]
    for mode, call in [
        ("non-streaming", lambda: sdk.chat.completions.create(model=MODEL, messages=messages)),
        ("streaming", lambda: list(sdk.chat.completions.create(model=MODEL, messages=messages, stream=True))),
    ]:
        try:
            call()
        except openai.RateLimitError as error:
            check(error.status_code == 429, f"{mode}: RateLimitError has status 429", error.status_code)
            check(error.code == "usage_limit_reached", f"{mode}: error code is usage_limit_reached", error.code)
            check(
                error.response.headers.get("retry-after") == retry_after,
                f"{mode}: Retry-After is the time until the limit resets",
                error.response.headers.get("retry-after"),
            )
            check(bool(error.message), f"{mode}: the error has a message", error.message)
            print(f"   ({error})")
        else:
            check(False, f"{mode}: a usage limit raises openai.RateLimitError", "no exception")


SCENARIOS = {
    "text": text,
    "text_stream": text_stream,
    "stream_helper": stream_helper,
    "tool_loop": tool_loop,
    "tool_loop_stream": tool_loop_stream,
    "structured_output": structured_output,
    "image": image,
    "rate_limit": rate_limit,
}


if __name__ == "__main__":
    run(SCENARIOS)
