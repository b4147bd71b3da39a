"""Drives the proxy's /v1/responses with the official OpenAI Python SDK.

Run by tests/python_sdk.rs, which starts the fake Codex backend and the proxy, scripts the fake,
and runs one scenario per test:

    OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=... \
        EXPECTED_TEXT=... python3 tests/sdk/responses_sdk.py <scenario>

The SDK builds its objects without validating them, so a field the proxy leaves out would only
surface when a caller reads it. Every response and raw stream event is therefore also validated
strictly against the SDK model its `type` selects (the SDK's own `_strict_response_validation`
validates events against the whole union, whose errors name every member but the right one).
Prints one line per check; exits non-zero on the first failure.
"""

import json
import typing

import openai
import pydantic
from sdk_checks import check, client, env, run
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

MODEL = "gpt-5.5"




# Fields the SDK's models require that the Codex backend does not send and the proxy passes on as it
# got them. `usage.input_tokens_details.cache_write_tokens` is newer than the backend's usage object
# (see shared/openapi/README.md); the SDK reads it as None. Reported, not failed.
KNOWN_GAPS = [("usage", "input_tokens_details", "cache_write_tokens")]


def schema_problems(model, data):
    """What `model` (strictly) rejects in `data`, as `path: message` lines, known gaps left out."""
    try:
        model.model_validate(data)
        return []
    except pydantic.ValidationError as error:
        errors = error.errors()
    # Inside a union, pydantic reports every member; keep only members whose `type` tag matches.
    wrong_members = {
        tuple(e["loc"][:-1])
        for e in errors
        if len(e["loc"]) >= 2 and e["loc"][-1] == "type" and e["type"] == "literal_error"
    }
    problems = []
    for e in errors:
        loc = tuple(e["loc"])
        if any(loc[: len(member)] == member for member in wrong_members):
            continue
        path = ".".join(str(part) for part in loc)
        if any(loc[-len(gap) :] == gap for gap in KNOWN_GAPS):
            print(f"note: known gap, {model.__name__}.{path} missing")
            continue
        problems.append(f"{model.__name__}.{path}: {e['msg']} (got {e.get('input')!r:.120})")
    return problems


def check_schema(obj, description):
    """Validates an SDK object strictly against its own model class."""
    problems = schema_problems(type(obj), obj.to_dict())
    check(not problems, f"{description} matches the SDK's {type(obj).__name__} schema", "\n".join(problems))


def event_models():
    """The SDK's stream event models by their `type` tag."""
    union = typing.get_args(ResponseStreamEvent)[0]
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in typing.get_args(union)}


def event_problems(events):
    """Strict schema problems of raw stream events; a type the SDK does not know is only noted."""
    models = event_models()
    problems = []
    for event in events:
        model = models.get(event.type)
        if model is None:
            print(f"note: event type {event.type!r} is not in the SDK; not validated")
            continue
        problems.extend(schema_problems(model, event.to_dict()))
    return problems


def non_streaming():
    expected = env("EXPECTED_TEXT")
    response = client().responses.create(model=MODEL, input="Say hello.")
    check(isinstance(response, Response), "create returns a Response", type(response))
    check_schema(response, "the response")
    check(response.status == "completed", "status is completed", response.status)
    check(response.output_text == expected, "output_text is the scripted text", repr(response.output_text))
    check(response.usage is not None and response.usage.total_tokens > 0, "usage.total_tokens > 0", response.usage)


def raw_streaming():
    expected = env("EXPECTED_TEXT")
    events = list(client().responses.create(model=MODEL, input="Say hello.", stream=True))
    kinds = [event.type for event in events]
    print(f"events: {kinds}")
    check(len(events) > 0, "the stream has events")
    problems = event_problems(events)
    check(not problems, f"all {len(events)} events match their SDK schemas", "\n".join(problems))
    check(isinstance(events[0], ResponseCreatedEvent), "first event is a ResponseCreatedEvent", type(events[0]))
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    check(len(deltas) > 0, "there are output_text deltas")
    check(
        all(isinstance(event, ResponseTextDeltaEvent) for event in deltas),
        "deltas are ResponseTextDeltaEvent",
        [type(event) for event in deltas],
    )
    joined = "".join(event.delta for event in deltas)
    check(joined == expected, "joined deltas are the scripted text", repr(joined))
    numbers = [event.sequence_number for event in events]
    check(all(a < b for a, b in zip(numbers, numbers[1:])), "sequence numbers increase", numbers)
    last = events[-1]
    check(isinstance(last, ResponseCompletedEvent), "last event is a ResponseCompletedEvent", type(last))
    check(last.response.status == "completed", "completed response status", last.response.status)
    check(
        last.response.output_text == expected,
        "response.completed carries the whole text",
        repr(last.response.output_text),
    )


def stream_helper():
    expected = env("EXPECTED_TEXT")
    with client().responses.stream(model=MODEL, input="Say hello.") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    check("".join(deltas) == expected, "helper deltas are the scripted text", repr("".join(deltas)))
    check(final.status == "completed", "final response status", final.status)
    check(final.output_text == expected, "get_final_response().output_text is the whole text", repr(final.output_text))
    check(final.usage is not None and final.usage.total_tokens > 0, "final usage.total_tokens > 0", final.usage)


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def function_call_round_trip():
    expected = env("EXPECTED_TEXT")
    call_id = env("EXPECTED_CALL_ID")
    arguments = json.loads(env("EXPECTED_ARGUMENTS"))
    sdk = client()
    question = "What is the weather in Paris?"
    first = sdk.responses.create(model=MODEL, input=question, tools=[WEATHER_TOOL])
    check_schema(first, "the first response")
    calls = [item for item in first.output if item.type == "function_call"]
    check(len(calls) == 1, "one function_call output item", [item.type for item in first.output])
    call = calls[0]
    check(isinstance(call, ResponseFunctionToolCall), "it is a ResponseFunctionToolCall", type(call))
    check(call.name == "get_weather", "call names get_weather", call.name)
    check(call.call_id == call_id, "call_id is the scripted one", call.call_id)
    check(json.loads(call.arguments) == arguments, "arguments are the scripted JSON", call.arguments)
    check(call.id is not None, "the returned item carries an id the proxy must strip on the way back", call.id)

    second = sdk.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": question},
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    check_schema(second, "the second response")
    check(second.status == "completed", "second response completed", second.status)
    check(second.output_text == expected, "second output_text is the scripted answer", repr(second.output_text))
    messages = [item for item in second.output if isinstance(item, ResponseOutputMessage)]
    check(len(messages) == 1, "second response has one assistant message", [item.type for item in second.output])


def error_mapping():
    detail = env("EXPECTED_DETAIL")
    retry_after = env("EXPECTED_RETRY_AFTER")
    sdk = client()
    try:
        sdk.responses.create(model=MODEL, input="Say hello.")
    except openai.RateLimitError as error:
        check(error.status_code == 429, "RateLimitError has status 429", error.status_code)
        check(error.code == "usage_limit_reached", "error code is usage_limit_reached", error.code)
        check(
            error.response.headers.get("retry-after") == retry_after,
            "Retry-After is the time until the limit resets (the SDK paces its retries by it)",
            error.response.headers.get("retry-after"),
        )
        check(isinstance(error.body, dict) and error.body.get("message"), "error body has a message", error.body)
        print(f"   ({error})")
    else:
        check(False, "usage limit raises openai.RateLimitError", "no exception")

    try:
        sdk.responses.create(model=MODEL, input="Say hello.")
    except openai.BadRequestError as error:
        check(error.status_code == 400, "BadRequestError has status 400", error.status_code)
        check(detail in error.message, "message carries the upstream detail", error.message)
        check(isinstance(error.body, dict) and error.body.get("message"), "error body has a message", error.body)
        print(f"   ({error})")
    else:
        check(False, "a 400 raises openai.BadRequestError", "no exception")


SCENARIOS = {
    "non_streaming": non_streaming,
    "raw_streaming": raw_streaming,
    "stream_helper": stream_helper,
    "function_call_round_trip": function_call_round_trip,
    "error_mapping": error_mapping,
}


if __name__ == "__main__":
    run(SCENARIOS)
