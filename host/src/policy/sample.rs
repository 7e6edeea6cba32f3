//! A realistic sample of targets and a request, for smoke calls (`policy check`) and
//! benchmarks (`policy bench`, criterion).

use super::request::{ChatMessage, Endpoint, RequestFields, Role, RouteRequest};
use super::review::{AnswerBody, AnswerView, FinishReason};
use super::target::{TargetInfo, TargetSignals};

fn target(
    id: &str,
    provider: &str,
    model: &str,
    price: (f64, f64),
    window: u32,
    tags: &[&str],
) -> TargetInfo {
    TargetInfo {
        id: id.into(),
        provider: provider.into(),
        model: model.into(),
        input_price: price.0,
        output_price: price.1,
        context_window: window,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// Ten targets across providers, models, prices, windows and tags.
pub fn sample_targets() -> Vec<TargetInfo> {
    vec![
        target(
            "openai-gpt-4o",
            "openai",
            "gpt-4o",
            (2.5, 10.0),
            128_000,
            &["code", "vision"],
        ),
        target(
            "openai-gpt-4o-mini",
            "openai",
            "gpt-4o-mini",
            (0.15, 0.6),
            128_000,
            &["vision"],
        ),
        target(
            "azure-gpt-4o-mini-eu",
            "openai",
            "gpt-4o-mini",
            (0.165, 0.66),
            128_000,
            &["region:eu"],
        ),
        target(
            "anthropic-sonnet",
            "anthropic",
            "claude-sonnet-4",
            (3.0, 15.0),
            200_000,
            &["code"],
        ),
        target(
            "anthropic-haiku",
            "anthropic",
            "claude-haiku-3.5",
            (0.8, 4.0),
            200_000,
            &[],
        ),
        target(
            "together-llama-70b",
            "openai",
            "llama-3.3-70b",
            (0.88, 0.88),
            131_072,
            &["open-weights"],
        ),
        target(
            "groq-llama-8b",
            "openai",
            "llama-3.1-8b",
            (0.05, 0.08),
            131_072,
            &["open-weights", "fast"],
        ),
        target(
            "vllm-qwen-coder",
            "openai",
            "qwen2.5-coder-32b",
            (0.0, 0.0),
            32_768,
            &["code", "self-hosted"],
        ),
        target(
            "openai-o3-mini",
            "openai",
            "o3-mini",
            (1.1, 4.4),
            200_000,
            &["reasoning"],
        ),
        target(
            "mistral-small-eu",
            "openai",
            "mistral-small",
            (0.1, 0.3),
            32_000,
            &["region:eu"],
        ),
    ]
}

/// Live-looking signals for `n` targets: mixed health, load and latency.
pub fn sample_signals(n: usize) -> Vec<TargetSignals> {
    (0..n)
        .map(|i| TargetSignals {
            healthy: i % 7 != 3,
            in_flight: (i as u32 * 3) % 11,
            capacity: 64,
            latency_ms: 300.0 + 45.0 * i as f32,
            ttft_ms: 120.0 + 20.0 * i as f32,
            error_rate: 0.01 * (i % 4) as f32,
            rate_limited_ms: if i == 5 { 1_500 } else { 0 },
        })
        .collect()
}

/// A four-message chat request for `model`, whose user turn is padded to
/// `prompt_bytes` bytes.
pub fn sample_request(model: &str, prompt_bytes: usize) -> RouteRequest {
    let mut question = String::from(
        "Can you review this function and tell me whether the error handling is right? ",
    );
    while question.len() < prompt_bytes {
        question.push_str("fn parse(input: &str) -> Result<Config, Error> { todo!() } ");
    }
    question.truncate(prompt_bytes.max(1));
    let messages = vec![
        ChatMessage::new(Role::System, "You are a careful senior Rust reviewer."),
        ChatMessage::new(Role::User, "Hi, I have a question about Rust."),
        ChatMessage::new(Role::Assistant, "Sure, go ahead."),
        ChatMessage::new(Role::User, question),
    ];
    let input_tokens = messages.iter().map(|m| m.text.len() as u32 / 4 + 4).sum();
    RouteRequest::new(
        RequestFields {
            id: "req-sample-0001".into(),
            endpoint: Endpoint::Chat,
            model: model.into(),
            input_tokens,
            max_output_tokens: Some(512),
            stream: true,
            has_tools: false,
            metadata: vec![
                ("user".into(), "u-1234".into()),
                ("tag".into(), "code".into()),
            ],
        },
        messages,
    )
}

/// A complete JSON answer of about `answer_bytes` bytes from target 0 of the sample
/// targets, to a client that asked for JSON, with one token log-probability per four
/// bytes and target 1 left to escalate to: what `policy bench` reviews.
pub fn sample_answer(answer_bytes: usize) -> AnswerView {
    let mut text = String::from("{\"verdict\": \"the error handling is right\", \"notes\": [");
    let mut first = true;
    while text.len() + 80 < answer_bytes {
        if !first {
            text.push_str(", ");
        }
        first = false;
        text.push_str("\"a parse error is returned to the caller with its line\"");
    }
    text.push_str("]}");
    let logprobs: Vec<f32> = (0..text.len() / 4)
        .map(|i| -0.05 - 0.01 * (i % 7) as f32)
        .collect();
    AnswerView {
        request_id: "req-sample-0001".into(),
        target: 0,
        attempt: 0,
        remaining: vec![1],
        finish_reason: Some(FinishReason::Stop),
        tool_calls: Vec::new(),
        input_tokens: 120,
        output_tokens: u32::try_from(logprobs.len()).unwrap_or(u32::MAX),
        cost_usd: 0.0002,
        spent_usd: 0.0002,
        wants_json: true,
        complete: true,
        verification: None,
        body: AnswerBody {
            text: text.into(),
            logprobs: logprobs.into(),
            schema: None,
            question: Some("Can you review this function?".into()),
        },
    }
}
