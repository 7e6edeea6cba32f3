//! `policies/bandit` through the gateway: three targets of different simulated quality
//! (the feedback scores a client sends) and price. After 2,000 requests with feedback
//! the bandit sends at least 80 % of the last 500 to the target with the best reward,
//! and hot swaps in the middle — a new config for the same version, then a different
//! component — keep what it learned, because it lives in the tenant's state store.

use crate::deploy::{OPERATOR, admin_post, upload};
use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::{KEY, TestGateway, send, send_with};
use crate::support::{engine, policy_check, wasm};
use serde_json::{Value, json};
use std::time::Duration;

fn component() -> std::path::PathBuf {
    wasm("signalbox_policy_bandit")
}

/// Simulated quality: the mean feedback score of each target's answers.
const QUALITY: [(&str, f64); 3] = [("premium", 0.9), ("value", 0.75), ("budget", 0.4)];

/// With the prompt below (12 input tokens, 5 output tokens from the fake), a cost
/// weight of 200 per dollar costs `premium` (100/200 $ per 1M tokens) about 0.44 of
/// reward and `value` (5/10) about 0.02: rewards ≈ 0.46, 0.73 and 0.40. `value` is
/// best — not the best quality, the best for the money.
const COST_WEIGHT: f64 = 200.0;
const BEST: &str = "value";
const PROMPT: &str = "Answer briefly: what is the capital of France?";

fn gateway_config(urls: [&str; 3]) -> String {
    let hash = |s: &str| signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(s));
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[engine]\ndeadline_ms = 50\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n[[admin.tokens]]\nhash = \"{}\"\n\n",
        hash(OPERATOR)
    );
    for ((id, price), url) in [
        ("premium", (100.0, 200.0)),
        ("value", (5.0, 10.0)),
        ("budget", (0.0, 0.0)),
    ]
    .into_iter()
    .zip(urls)
    {
        toml += &format!(
            "[[providers]]\nname = \"{id}\"\nkind = \"openai\"\nbase_url = \"{url}/v1\"\napi_key_env = \"TEST_KEY\"\n\n\
             [[targets]]\nid = \"{id}\"\nprovider = \"{id}\"\nmodel = \"{id}-model\"\ninput_price = {}\noutput_price = {}\n\n",
            price.0, price.1
        );
    }
    // The safe route is the worst arm: a policy failure could only hurt the share.
    toml += &format!(
        "[[tenants]]\nid = \"acme\"\nkey_hashes = [\"{}\"]\npolicy = \"{}\"\nsafe_route = [\"budget\"]\n\n\
         [tenants.policy_config]\nalgorithm = \"thompson\"\ncost_weight = {COST_WEIGHT}\n",
        hash(KEY),
        component().display()
    );
    toml
}

/// A deterministic generator for the simulated scores.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sends `n` chats, each followed by the client's feedback: the serving target's
/// quality ± 0.2, uniformly. Returns the serving targets and the policy labels seen.
async fn run(gw: &TestGateway, rng: &mut Rng, n: usize) -> (Vec<String>, Vec<String>) {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]});
    let mut targets = Vec::with_capacity(n);
    let mut labels = Vec::new();
    for _ in 0..n {
        let r = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(KEY),
            Some(body.to_string().as_bytes()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let target = r.header("x-signalbox-target").to_owned();
        let label = r.header("x-signalbox-policy").to_owned();
        if labels.last() != Some(&label) {
            labels.push(label);
        }
        let quality = QUALITY.iter().find(|(id, _)| *id == target).unwrap().1;
        let score = (quality + (rng.unit() - 0.5) * 0.4).clamp(0.0, 1.0);
        let feedback = json!({"request_id": r.header("x-request-id"), "score": score});
        let mut accepted = false;
        for _ in 0..50 {
            let f = send_with(
                "POST",
                &gw.url("/v1/feedback"),
                Some(KEY),
                Some(feedback.to_string().as_bytes()),
                &[],
            )
            .await;
            if f.status == 200 {
                accepted = true;
                break;
            }
            // The decision is remembered as the response is accounted; a feedback
            // racing it gets a 404 and tries again.
            assert_eq!(f.status, 404, "{}", f.text());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(accepted, "feedback for {feedback} never accepted");
        targets.push(target);
    }
    (targets, labels)
}

fn share(targets: &[String], id: &str) -> f64 {
    targets.iter().filter(|t| *t == id).count() as f64 / targets.len() as f64
}

/// `component` with one more custom section (id 0): still a valid component, with
/// different bytes and so a different version id.
fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

async fn activate(gw: &TestGateway, name: &str, component: &[u8], config: &Value) -> String {
    let up = upload(gw, "acme", OPERATOR, name, component, config).await;
    assert_eq!(up.status, 201, "{}", up.text());
    let version = up.json()["version"].as_str().unwrap().to_owned();
    let on = admin_post(
        gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": version, "config": config}),
    )
    .await;
    assert_eq!(on.status, 200, "{}", on.text());
    on.json()["active"]["label"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandit_converges_on_the_best_reward_and_keeps_it_across_hot_swaps() {
    let ups = [
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
    ];
    let urls = ups.each_ref().map(|u| u.url());
    let gw = TestGateway::start(&gateway_config(urls.each_ref().map(String::as_str))).await;
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let mut all = Vec::new();

    let (learning, _) = run(&gw, &mut rng, 1_000).await;
    assert!(
        learning.iter().any(|t| t == "premium") && learning.iter().any(|t| t == "budget"),
        "every arm is tried"
    );
    all.extend(learning);

    // Swap 1: the same component under a new config (a new binding, fresh instances).
    let original = std::fs::read(component()).unwrap();
    let new_config = json!({"algorithm": "thompson", "cost_weight": COST_WEIGHT,
                            "prior": {"alpha": 2, "beta": 2}});
    let label = activate(&gw, "bandit", &original, &new_config).await;
    let (after, labels) = run(&gw, &mut rng, 200).await;
    assert_eq!(labels, std::slice::from_ref(&label));
    // A bandit starting from nothing would spread its first requests over all three
    // arms; one that kept its state exploits from the first request.
    let (first, s) = (share(&after[..50], BEST), share(&after, BEST));
    assert!(
        first >= 0.8 && s >= 0.8,
        "{BEST} got {first:.2} of the first 50 and {s:.2} of 200 after the config change"
    );
    all.extend(after);

    // Swap 2: a different component (new bytes, new version id).
    let changed = with_custom_section(&original, "signalbox-test", b"bandit, second build");
    let label2 = activate(&gw, "bandit-v2", &changed, &new_config).await;
    assert_ne!(label2, label);
    let (after, labels) = run(&gw, &mut rng, 200).await;
    assert_eq!(labels, [label2]);
    let (first2, s2) = (share(&after[..50], BEST), share(&after, BEST));
    assert!(
        first2 >= 0.8 && s2 >= 0.8,
        "{BEST} got {first2:.2} of the first 50 and {s2:.2} of 200 after the version swap"
    );
    all.extend(after);

    let (rest, _) = run(&gw, &mut rng, 600).await;
    all.extend(rest);
    assert_eq!(all.len(), 2_000);
    let last = share(&all[1_500..], BEST);
    assert!(last >= 0.8, "{BEST} got {last:.2} of the last 500");
    eprintln!(
        "bandit: {BEST} served {:.2} of the first 1000, {first:.2}/{s:.2} of 50/200 after the config change, {first2:.2}/{s2:.2} after the version swap, {last:.2} of the last 500",
        share(&all[..1_000], BEST)
    );
    for up in &ups {
        assert!(up.hits() > 0);
    }
}

#[test]
fn the_example_config_passes_policy_check() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policies/bandit.json"
    );
    let config = std::fs::read_to_string(example).unwrap();
    let text = policy_check(&component(), &config);
    assert!(text.contains("(thompson draw "), "{text}");
    assert!(text.contains(", class code)"), "{text}");
}

#[test]
fn a_broken_config_is_refused_at_activation_naming_the_field() {
    let policy = engine().load_file(&component()).unwrap();
    for (config, needle) in [
        (r#"{"cost_weight": -1}"#, "`cost_weight`"),
        (r#"{"class_by": "tag"}"#, "`classes`"),
        (
            r#"{"arms": ["openai-gpt-4o", "gpt-9"]}"#,
            "`arms[1]`: no target has the id `gpt-9`",
        ),
        (r#"{"algorithm": "greedy"}"#, "algorithm"),
    ] {
        let err = policy
            .bind(
                signalbox::policy::TenantContext::new("acme"),
                config,
                signalbox::policy::sample_targets(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad_config", "{config}");
        assert!(err.to_string().contains(needle), "{config}: {err}");
    }
}
