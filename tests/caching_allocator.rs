//! The proxy served with `allocator::CachingAllocator` as this test binary's global allocator,
//! as the static (musl) binary is: the whole request path (intake, workers, ureq, the
//! translators) allocates and frees through the caches from several threads at once, and
//! every answer must still be exactly right. (The glibc build keeps glibc's allocator, so
//! without this test only the static-binary check would run the proxy on the caches.)

#[path = "support/fake_codex.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod fake_codex;
#[path = "support/harness.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod harness;
#[path = "support/secrets.rs"]
#[expect(dead_code, reason = "shared test support; each test crate uses a part")]
mod secrets;

use codex_sub_proxy::allocator::{CachingAllocator, LARGEST_CACHED};
use fake_codex::{FakeCodex, Script};
use harness::{TestProxy, config, post_json, stream_events};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: CachingAllocator = CachingAllocator::new();

/// Blocks held by the caches, over every cached size.
fn cached_blocks() -> usize {
    (4..=LARGEST_CACHED.trailing_zeros())
        .map(|shift| ALLOCATOR.cached_blocks(1 << shift))
        .sum()
}

/// A reply long enough to take many deltas and buffers of several sizes.
fn reply() -> String {
    (0..300)
        .map(|word| format!("word{word}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a streamed answer: Responses `output_text` deltas, or chat content deltas.
fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|event| {
            if event["type"] == "response.output_text.delta" {
                event["delta"].as_str()
            } else {
                event["choices"][0]["delta"]["content"].as_str()
            }
        })
        .collect()
}

#[test]
fn concurrent_requests_through_the_caching_allocator_get_exact_answers() {
    let fake = FakeCodex::start();
    let expected = reply();
    fake.set_default_script(Script::Text {
        text: expected.clone(),
        deltas: 60,
    });
    let proxy = TestProxy::start(config(
        &fake.base_url(),
        &[("WORKERS", "8"), ("QUEUE_DEPTH", "64")],
    ));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let base = proxy.base.clone();
            let addr = proxy.addr();
            let expected = expected.clone();
            std::thread::spawn(move || {
                for round in 0..12 {
                    let prompt = format!("client {client} round {round}");
                    let responses = json!({"model": "gpt-5.5", "input": prompt});
                    let chat = json!({"model": "gpt-5.5",
                        "messages": [{"role": "user", "content": prompt}]});
                    match round % 4 {
                        0 => {
                            let answer = post_json(&format!("{base}/v1/responses"), &responses);
                            assert_eq!(answer.status, 200, "{}", answer.body);
                            assert_eq!(answer.json()["output"][0]["content"][0]["text"], expected);
                        }
                        1 => {
                            let answer = post_json(&format!("{base}/v1/chat/completions"), &chat);
                            assert_eq!(answer.status, 200, "{}", answer.body);
                            assert_eq!(answer.json()["choices"][0]["message"]["content"], expected);
                        }
                        2 => {
                            let mut body = responses.clone();
                            body["stream"] = json!(true);
                            let (status, _, events) = stream_events(&addr, "/v1/responses", &body);
                            assert_eq!(status, 200);
                            assert_eq!(streamed_text(&events), expected);
                        }
                        _ => {
                            let mut body = chat.clone();
                            body["stream"] = json!(true);
                            let (status, _, events) =
                                stream_events(&addr, "/v1/chat/completions", &body);
                            assert_eq!(status, 200);
                            assert_eq!(streamed_text(&events), expected);
                        }
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every answer was exact");
    }
    assert_eq!(fake.responses_requests().len(), 8 * 12);
    // The answers above were served from reused blocks, not only from fresh ones.
    assert!(cached_blocks() > 0, "the caches were never used");
}
