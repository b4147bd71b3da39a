//! Unit tests for [`translate`](super::translate): chat bodies in, Responses bodies out.

use super::*;

const INSTRUCTIONS: ChatOptions<'static> = ChatOptions {
    default_instructions: "Default prompt.",
    system_as: ChatSystemAs::Instructions,
};

fn run_with(body: Value, options: &ChatOptions<'_>) -> Result<ChatRequest, ProxyError> {
    let Value::Object(body) = body else {
        panic!("test body must be an object")
    };
    translate(body, options)
}

fn run(body: Value) -> Result<ChatRequest, ProxyError> {
    run_with(body, &INSTRUCTIONS)
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

#[test]
fn a_plain_chat_gets_the_responses_invariants() {
    let request = run(json!({
        "model": "gpt-5.5",
        "messages": [{"role": "system", "content": "Be terse."}, user("hi")],
        "stream": true, "stream_options": {"include_usage": true},
    }))
    .expect("valid");
    assert!(request.upstream.stream);
    assert!(request.include_usage);
    assert_eq!(request.call_style, CallStyle::Tools);
    assert_eq!(request.requested_model, "gpt-5.5");
    let body = &request.upstream.body;
    assert_eq!(body["model"], "gpt-5.5");
    assert_eq!(body["instructions"], "Be terse.");
    assert_eq!(body["store"], false);
    assert_eq!(body["stream"], true);
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["include"], json!([]));
    assert_eq!(
        body["input"],
        json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}])
    );
    assert!(body.get("stream_options").is_none());
    assert!(request.upstream.dropped.is_empty());
}

#[test]
fn developer_mode_keeps_the_default_instructions() {
    let options = ChatOptions {
        default_instructions: "Official prompt.",
        system_as: ChatSystemAs::Developer,
    };
    let request = run_with(
        json!({"model": "m", "messages": [{"role": "system", "content": "Be terse."}, user("hi")]}),
        &options,
    )
    .expect("valid");
    let body = &request.upstream.body;
    assert_eq!(body["instructions"], "Official prompt.");
    assert_eq!(body["input"][0]["role"], "developer");
    assert_eq!(body["input"][0]["content"][0]["text"], "Be terse.");
    let request = run(json!({"model": "m", "messages": [user("hi")]})).expect("valid");
    assert_eq!(request.upstream.body["instructions"], "Default prompt.");
}

#[test]
fn sampling_knobs_and_unknown_fields_are_dropped_and_named() {
    let request = run(json!({
        "model": "m", "messages": [user("x")], "temperature": 0.2, "top_p": 1,
        "max_tokens": 10, "max_completion_tokens": 10, "stop": ["\n"], "seed": 1,
        "frequency_penalty": 0, "presence_penalty": 0, "user": "u", "metadata": {},
        "store": true, "logit_bias": {}, "brand_new": 1, "n": 1, "logprobs": false,
        "temperature_null": null, "top_k": null
    }))
    .expect("valid");
    let mut dropped = request.upstream.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        [
            "brand_new",
            "frequency_penalty",
            "logit_bias",
            "max_completion_tokens",
            "max_tokens",
            "metadata",
            "presence_penalty",
            "seed",
            "stop",
            "store",
            "temperature",
            "top_p",
            "user"
        ]
    );
    let body = request.upstream.body.as_object().expect("object");
    for field in [
        "temperature",
        "max_tokens",
        "stop",
        "brand_new",
        "n",
        "logprobs",
    ] {
        assert!(!body.contains_key(field), "{field}");
    }
    assert_eq!(body["store"], false);
}

#[test]
fn shape_changing_parameters_are_rejected_by_name() {
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("modalities", json!(["text", "audio"])),
        ("audio", json!({"voice": "alloy", "format": "mp3"})),
        ("prediction", json!({"type": "content", "content": "x"})),
    ] {
        let mut body = json!({"model": "m", "messages": [user("x")]});
        body[field] = value;
        let error = run(body).expect_err(field);
        assert_eq!(error.status(), 400);
        assert_eq!(error.param().as_deref(), Some(field));
        assert_eq!(error.code().as_deref(), Some("unsupported_parameter"));
    }
}

#[test]
fn tools_choice_and_parallel_calls_map_to_the_flat_shapes() {
    let request = run(json!({
        "model": "m", "messages": [user("x")],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "strict_one", "strict": true,
             "parameters": {"type": "object", "properties": {}, "additionalProperties": false}}},
            {"type": "function", "function": {"name": "bare"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
    }))
    .expect("valid");
    let body = &request.upstream.body;
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "name": "get_weather", "description": "Weather", "strict": false,
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}})
    );
    assert_eq!(body["tools"][1]["strict"], true);
    assert_eq!(
        body["tools"][2]["parameters"],
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
    assert_eq!(body["parallel_tool_calls"], false);

    for (choice, expected) in [
        (json!("required"), json!("required")),
        (json!("none"), json!("none")),
        (
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
                   "tools": [{"type": "function", "function": {"name": "a"}}]}}),
            json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "a"}]}),
        ),
    ] {
        let request = run(json!({"model": "m", "messages": [user("x")], "tool_choice": choice}))
            .expect("valid");
        assert_eq!(request.upstream.body["tool_choice"], expected);
    }
    let error = run(json!({"model": "m", "messages": [user("x")], "tool_choice": "sometimes"}))
        .expect_err("unknown choice");
    assert_eq!(error.param().as_deref(), Some("tool_choice"));
    let error = run(json!({"model": "m", "messages": [user("x")],
                           "tools": [{"type": "custom", "custom": {"name": "g"}}]}))
    .expect_err("custom tools");
    assert_eq!(error.param().as_deref(), Some("tools[0]"));
}

#[test]
fn web_search_options_add_a_web_search_tool_unless_one_is_listed() {
    let request = run(json!({
        "model": "m", "messages": [user("news?")],
        "web_search_options": {"search_context_size": "low", "user_location": {
            "type": "approximate", "approximate": {"country": "GB", "city": "London"}}},
    }))
    .expect("valid");
    assert_eq!(
        request.upstream.body["tools"],
        json!([{"type": "web_search", "search_context_size": "low",
                "user_location": {"type": "approximate", "country": "GB", "city": "London"}}])
    );
    let request = run(json!({
        "model": "m", "messages": [user("news?")], "web_search_options": {},
        "tools": [{"type": "web_search_preview"}],
    }))
    .expect("valid");
    assert_eq!(
        request.upstream.body["tools"],
        json!([{"type": "web_search_preview"}])
    );
}

#[test]
fn response_format_and_verbosity_become_text() {
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}},
                        "required": ["answer"], "additionalProperties": false});
    let request = run(json!({
        "model": "m", "messages": [user("x")], "verbosity": "low",
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "answer", "schema": schema, "strict": true}},
    }))
    .expect("valid");
    assert_eq!(
        request.upstream.body["text"],
        json!({"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": true},
               "verbosity": "low"})
    );
    let request = run(json!({"model": "m", "messages": [user("x")],
                             "response_format": {"type": "json_object"}}))
    .expect("valid");
    assert_eq!(
        request.upstream.body["text"],
        json!({"format": {"type": "json_object"}})
    );
    let error = run(json!({"model": "m", "messages": [user("x")],
                           "response_format": {"type": "json_schema", "json_schema": {"name": "n"}}}))
    .expect_err("schema missing");
    assert_eq!(
        error.param().as_deref(),
        Some("response_format.json_schema.schema")
    );
}

#[test]
fn reasoning_effort_alias_and_object_request_summaries() {
    let request = run(json!({"model": "gpt-5.5-high", "messages": [user("x")]})).expect("valid");
    assert_eq!(request.requested_model, "gpt-5.5-high");
    assert_eq!(request.upstream.model, "gpt-5.5");
    let body = &request.upstream.body;
    assert_eq!(body["model"], "gpt-5.5");
    assert_eq!(
        body["reasoning"],
        json!({"effort": "high", "summary": "auto"})
    );
    assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));

    let request = run(json!({"model": "gpt-5.5-xhigh", "messages": [user("x")],
                             "reasoning_effort": "low"}))
    .expect("valid");
    assert_eq!(request.upstream.body["reasoning"]["effort"], "low");

    let request = run(json!({"model": "gpt-5.4-mini", "messages": [user("x")],
                             "reasoning": {"effort": "minimal", "summary": "detailed", "max_tokens": 5}}))
    .expect("valid");
    assert_eq!(request.upstream.body["model"], "gpt-5.4-mini");
    assert_eq!(
        request.upstream.body["reasoning"],
        json!({"effort": "minimal", "summary": "detailed"})
    );
    assert_eq!(request.upstream.dropped, ["reasoning.max_tokens"]);

    let request = run(json!({"model": "gpt-5.5", "messages": [user("x")]})).expect("valid");
    assert!(request.upstream.body.get("reasoning").is_none());
    assert_eq!(split_effort_alias("-high"), ("-high".to_string(), None));
}

#[test]
fn legacy_functions_map_to_tools_with_one_call_at_a_time() {
    let request = run(json!({
        "model": "m", "messages": [user("x")],
        "functions": [{"name": "lookup", "parameters": {"type": "object", "properties": {}}}],
        "function_call": {"name": "lookup"}, "parallel_tool_calls": true,
    }))
    .expect("valid");
    assert_eq!(request.call_style, CallStyle::LegacyFunctions);
    let body = &request.upstream.body;
    assert_eq!(body["tools"][0]["name"], "lookup");
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "name": "lookup"})
    );
    assert_eq!(body["parallel_tool_calls"], false);
    let error = run(json!({"model": "m", "messages": [user("x")],
                           "functions": [{"name": "a"}], "tools": []}))
    .expect_err("both");
    assert_eq!(error.param().as_deref(), Some("functions"));
}

#[test]
fn missing_and_mistyped_fields_name_the_parameter() {
    for (body, param) in [
        (json!({"messages": [user("x")]}), "model"),
        (json!({"model": "", "messages": [user("x")]}), "model"),
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [user("x")], "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "m", "messages": [user("x")], "tools": {}}),
            "tools",
        ),
        (
            json!({"model": "m", "messages": [user("x")], "reasoning_effort": 3}),
            "reasoning_effort",
        ),
    ] {
        let error = run(body).expect_err(param);
        assert_eq!(error.status(), 400);
        assert_eq!(error.param().as_deref(), Some(param));
    }
}

#[test]
fn errors_name_the_exact_place_of_the_bad_value() {
    let function = |name: Value| json!({"type": "function", "function": {"name": name}});
    let cases = [
        (
            json!({"messages": [user("x")], "tools": [function(json!("f")), function(json!(7))]}),
            "tools[1].function.name",
        ),
        (
            json!({"messages": [user("x")], "tools": [{"type": "code_interpreter"}]}),
            "tools[0].type",
        ),
        (
            json!({"messages": [user("x")], "tools": [{"type": "function", "function": null}]}),
            "tools[0].function",
        ),
        (
            json!({"messages": [user("x")], "functions": [{"description": "no name"}]}),
            "functions[0].name",
        ),
        (
            json!({"messages": [user("x"), {"role": "user", "content": [
            {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}]}]}),
            "messages[1].content[1].image_url.url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": 3}]}]}),
            "messages[0].content[0].file",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [user("x"), {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"arguments": "{}"}}]}]}),
            "messages[1].tool_calls[1].function.name",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"type": "custom"}]}]}),
            "messages[0].tool_calls[0].type",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": {}}]}),
            "messages[0].tool_calls",
        ),
        (
            json!({"messages": [{"role": "assistant", "function_call": {"arguments": "{}"}}]}),
            "messages[0].function_call.name",
        ),
        (
            json!({"messages": [{"role": "system", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [user("x"), "not an object"]}),
            "messages[1]",
        ),
    ];
    for (mut body, param) in cases {
        body["model"] = json!("m");
        let error = run(body.clone()).expect_err("refused");
        assert_eq!(error.param().as_deref(), Some(param), "{body}");
        assert_eq!(error.status(), 400, "{body}");
    }
}
