//! Answers a policy can refuse (contract 0.4.0's `review`): `policies/cascade` and the
//! reviewer fixture through the gateway, over real TCP, with fake upstreams. An
//! escalated answer never reaches the client; every attempt is paid for, and a
//! request's cost is the sum of its ledger rows.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire, prompt_tokens};
use crate::gateway_support::*;
use crate::support::wasm;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Three upstreams: `cheap` (target 0, $1/$2 per million tokens), `strong` (target 1,
/// $2/$3) and `judge` (target 2, $3/$4, the verifier).
struct Ladder {
    cheap: FakeUpstream,
    strong: FakeUpstream,
    judge: FakeUpstream,
}

impl Ladder {
    async fn start() -> Ladder {
        Ladder {
            cheap: FakeUpstream::start(Wire::OpenAi).await,
            strong: FakeUpstream::start(Wire::OpenAi).await,
            judge: FakeUpstream::start(Wire::OpenAi).await,
        }
    }

    /// A gateway whose tenant runs `policy` with `policy_config` (TOML lines), a
    /// ledger in `dir` and a decision log beside it.
    async fn gateway(&self, policy: &str, policy_config: &str, dir: &Path) -> TestGateway {
        self.gateway_with(policy, policy_config, dir, "").await
    }

    /// The same, with more lines of the tenant's own table.
    async fn gateway_with(
        &self,
        policy: &str,
        policy_config: &str,
        dir: &Path,
        tenant: &str,
    ) -> TestGateway {
        TestGateway::start(&self.config(policy, policy_config, dir, tenant)).await
    }

    /// The config of [`gateway_with`](Self::gateway_with).
    fn config(&self, policy: &str, policy_config: &str, dir: &Path, tenant: &str) -> String {
        let extra = format!(
            "{tenant}\npolicy = \"{}\"\n\n[tenants.limits]\nbudget_usd_per_day = 100.0\n\n\
             [tenants.policy_config]\n{policy_config}\n\n\
             [engine]\ndeadline_ms = 100\n\n\
             [ledger]\npath = \"{}\"\n\n\
             [decision_log]\npath = \"{}\"\n",
            wasm(policy).display(),
            dir.join("usage.db").display(),
            dir.join("decisions.jsonl").display(),
        );
        config(
            &[
                ("pc", "openai", &format!("{}/v1", self.cheap.url())),
                ("ps", "openai", &format!("{}/v1", self.strong.url())),
                ("pj", "openai", &format!("{}/v1", self.judge.url())),
            ],
            &[
                ("cheap", "pc", "m"),
                ("strong", "ps", "m"),
                ("judge", "pj", "m"),
            ],
            &extra,
        )
    }
}

const CASCADE: &str = "ladder = [\"cheap\", \"strong\"]";

fn json_request() -> Value {
    json!({
        "model": "m",
        "messages": [{"role": "user", "content": "Give me a JSON object."}],
        "response_format": {"type": "json_object"},
    })
}

fn question(text: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": text}]})
}

fn content(reply: &Reply) -> String {
    reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Every ledger row: `(request_id, target, charge, input, output, cost)`, in order.
fn ledger_rows(dir: &Path) -> Vec<(String, String, String, u32, u32, f64)> {
    let conn = rusqlite::Connection::open(dir.join("usage.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT request_id, target, charge, input_tokens, output_tokens, cost_usd
             FROM usage ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The decision log's line for `request_id`, once the writer has flushed it.
async fn decision_line(dir: &Path, request_id: &str) -> Value {
    for _ in 0..500 {
        let log = std::fs::read_to_string(dir.join("decisions.jsonl")).unwrap_or_default();
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["request_id"] == request_id);
        if let Some(line) = line {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no decision-log line for {request_id}");
}

/// What `tokens` cost on the target priced `(input, output)` USD per million.
fn priced(tokens: (u64, u64), prices: (f64, f64)) -> f64 {
    (tokens.0 as f64 * prices.0 + tokens.1 as f64 * prices.1) / 1e6
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_escalated_and_the_client_gets_only_the_valid_answer() {
    let ladder = Ladder::start().await;
    ladder
        .cheap
        .set_default(Upstream::ok().text("Sure! {\"ok\": tru"));
    ladder
        .strong
        .set_default(Upstream::ok().text("{\"ok\": true}"));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway("signalbox_policy_cascade", CASCADE, &dir)
        .await;

    let reply = chat(&gw, &json_request()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(content(&reply), "{\"ok\": true}");
    assert_eq!(reply.header("x-signalbox-target"), "strong");
    assert_eq!(
        reply.header("x-signalbox-escalations"),
        "cheap: invalid-json"
    );
    assert_eq!(reply.header("x-signalbox-attempts"), "2");
    assert!(!reply.text().contains("tru\""), "the refused answer leaked");
    assert_eq!((ladder.cheap.hits(), ladder.strong.hits()), (1, 1));
    let request_id = reply.header("x-request-id").to_owned();

    // A valid answer from the cheap target is the answer.
    ladder
        .cheap
        .set_default(Upstream::ok().text("{\"cheap\": 1}"));
    let reply = chat(&gw, &json_request()).await;
    assert_eq!(content(&reply), "{\"cheap\": 1}");
    assert_eq!(reply.header("x-signalbox-target"), "cheap");
    assert_eq!(reply.header("x-signalbox-escalations"), "");
    assert_eq!((ladder.cheap.hits(), ladder.strong.hits()), (2, 1));

    // Both attempts of the escalated request are in the ledger, each priced on its
    // own target; the request's cost is their sum, and the budget counts it all.
    let spent = gw.gateway.tenants["acme"].quota.spent_usd().0;
    let input = prompt_tokens(&ladder.cheap.requests()[0].body);
    let cheap_out = Upstream::ok()
        .text("Sure! {\"ok\": tru")
        .completion_tokens();
    let strong_out = Upstream::ok().text("{\"ok\": true}").completion_tokens();
    drop(gw);
    let rows = ledger_rows(&dir);
    let of_request: Vec<_> = rows.iter().filter(|r| r.0 == request_id).collect();
    assert_eq!(of_request.len(), 2, "{rows:#?}");
    let escalated = of_request.iter().find(|r| r.2 == "escalated").unwrap();
    let answered = of_request.iter().find(|r| r.2.is_empty()).unwrap();
    assert_eq!(escalated.1, "cheap");
    assert_eq!(answered.1, "strong");
    let cheap_cost = priced((input, cheap_out), (1.0, 2.0));
    let strong_cost = priced((input, strong_out), (2.0, 3.0));
    assert!((escalated.5 - cheap_cost).abs() < 1e-12, "{escalated:?}");
    assert!((answered.5 - strong_cost).abs() < 1e-12, "{answered:?}");
    let all: f64 = rows.iter().map(|r| r.5).sum();
    assert!((spent - all).abs() < 1e-12, "budget {spent}, ledger {all}");
    // The ledger's aggregates count requests, not attempts: two.
    let requests = signalbox::ledger::query_file(
        &dir.join("usage.db"),
        &signalbox::ledger::UsageQuery {
            tenant: Some("acme".into()),
            from_ms: None,
            to_ms: None,
            group_by: signalbox::ledger::GroupBy::Key,
        },
    )
    .unwrap();
    assert_eq!(requests.iter().map(|a| a.requests).sum::<u64>(), 2);
    assert!((requests.iter().map(|a| a.cost_usd).sum::<f64>() - all).abs() < 1e-12);

    // The decision log shows the cascade: the refused attempt with its cost.
    let line = decision_line(&dir, &request_id).await;
    let charged = &line["outcome"]["charged"][0];
    assert_eq!(charged["target"], "cheap");
    assert_eq!(charged["charge"], "escalated");
    assert_eq!(charged["reason"], "invalid-json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_confidence_answer_escalates_and_a_confident_one_does_not() {
    let ladder = Ladder::start().await;
    ladder
        .strong
        .set_default(Upstream::ok().text("Strong answer."));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway(
            "signalbox_policy_cascade",
            &format!("{CASCADE}\n[tenants.policy_config.checks]\nmin_mean_logprob = -1.0"),
            &dir,
        )
        .await;

    ladder
        .cheap
        .enqueue(Upstream::ok().text("Maybe Lyon.").logprobs(&[-2.5, -3.0]));
    let unsure = chat(&gw, &question("What is the capital of France?")).await;
    assert_eq!(content(&unsure), "Strong answer.");
    assert!(
        unsure
            .header("x-signalbox-escalations")
            .starts_with("cheap: low-confidence:"),
        "{:?}",
        unsure.headers
    );

    ladder
        .cheap
        .enqueue(Upstream::ok().text("Paris.").logprobs(&[-0.05, -0.2]));
    let sure = chat(&gw, &question("What is the capital of France?")).await;
    assert_eq!(content(&sure), "Paris.");
    assert_eq!(sure.header("x-signalbox-target"), "cheap");
    assert_eq!((ladder.cheap.hits(), ladder.strong.hits()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_that_says_no_escalates_and_one_that_says_yes_does_not() {
    let ladder = Ladder::start().await;
    ladder.cheap.set_default(Upstream::ok().text("Lyon."));
    ladder.strong.set_default(Upstream::ok().text("Paris."));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway(
            "signalbox_policy_cascade",
            &format!(
                "{CASCADE}\n[tenants.policy_config.checks.verifier]\ntarget = \"judge\"\nmax_tokens = 3"
            ),
            &dir,
        )
        .await;

    ladder.judge.enqueue(Upstream::ok().text("No."));
    let reply = chat(&gw, &question("What is the capital of France?")).await;
    assert_eq!(content(&reply), "Paris.");
    assert_eq!(
        reply.header("x-signalbox-escalations"),
        "cheap: verifier-no"
    );
    // The verifier saw the question and the answer, off the client's path.
    let asked = &ladder.judge.requests()[0].body;
    let prompt = asked["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("What is the capital of France?") && prompt.contains("Lyon."),
        "{prompt}"
    );
    assert_eq!(asked["max_tokens"], 3);
    assert_eq!(asked["stream"], false);
    let request_id = reply.header("x-request-id").to_owned();

    // The strong answer, with nothing above it, is not checked again.
    assert_eq!(ladder.judge.hits(), 1);
    ladder.judge.set_default(Upstream::ok().text("Yes"));
    let reply = chat(&gw, &question("And of Italy?")).await;
    assert_eq!(content(&reply), "Lyon.");
    assert_eq!(reply.header("x-signalbox-target"), "cheap");
    assert_eq!(ladder.judge.hits(), 2);

    // Every call is paid for: the refused answer, the verifier's call and the answer.
    drop(gw);
    let rows = ledger_rows(&dir);
    let mut charges: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.0 == request_id)
        .map(|r| (r.1.as_str(), r.2.as_str()))
        .collect();
    charges.sort();
    assert_eq!(
        charges,
        [
            ("cheap", "escalated"),
            ("judge", "verifier"),
            ("strong", "")
        ]
    );
    assert!(rows.iter().all(|r| r.5 > 0.0), "{rows:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_traps_or_spins_still_serves_the_first_answer() {
    for act in ["trap", "spin"] {
        let ladder = Ladder::start().await;
        ladder.cheap.set_default(Upstream::ok().text("First."));
        ladder.strong.set_default(Upstream::ok().text("Second."));
        let (_dir, dir) = temp();
        let gw = ladder
            .gateway(
                "signalbox_fixture_reviewer",
                &format!("review = \"{act}\""),
                &dir,
            )
            .await;
        let reply = chat(&gw, &question("Hello")).await;
        assert_eq!(reply.status, 200, "{act}: {}", reply.text());
        assert_eq!(content(&reply), "First.", "{act}");
        assert_eq!(reply.header("x-signalbox-target"), "cheap", "{act}");
        assert_eq!(ladder.strong.hits(), 0, "{act}");
        // The failed review is counted as a failed policy call.
        let routing = gw.gateway.tenants["acme"].policy.current();
        let calls = routing.pick("any").binding.calls();
        let failures = if act == "trap" {
            calls.traps()
        } else {
            calls.deadlines()
        };
        assert_eq!(failures, 1, "{act}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_hears_which_answer_was_accepted_and_escalations_stop_at_the_cap() {
    let ladder = Ladder::start().await;
    ladder.cheap.set_default(Upstream::ok().text("First."));
    ladder.strong.set_default(Upstream::ok().text("Second."));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway(
            "signalbox_fixture_reviewer",
            "review = \"escalate-first\"",
            &dir,
        )
        .await;
    let reply = chat(&gw, &question("Hello")).await;
    assert_eq!(content(&reply), "Second.");
    let request_id = reply.header("x-request-id").to_owned();
    let routing = gw.gateway.tenants["acme"].policy.current();
    let state = routing.pick("any").binding.tenant().state.clone();
    let key = format!("outcome:{request_id}");
    let mut heard = None;
    for _ in 0..500 {
        heard = state.get(&key);
        if heard.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let heard: Value = serde_json::from_slice(&heard.expect("an outcome")).unwrap();
    assert_eq!(heard, json!({"target": 1, "escalated": [0]}));

    // Escalating every answer: the attempt limit (three targets here) ends the
    // cascade with the last answer sent, never with a refused answer lost.
    drop(gw);
    let (_dir2, dir2) = temp();
    let gw = ladder
        .gateway("signalbox_fixture_reviewer", "review = \"escalate\"", &dir2)
        .await;
    let reply = chat(&gw, &question("Hello")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "judge");
    assert_eq!(
        reply.header("x-signalbox-escalations"),
        "cheap: fixture; strong: fixture"
    );

    // With a cost cap the first answer's own cost reaches, its escalation is not
    // honoured: the first answer is sent, and the decision log says why.
    drop(gw);
    let (_dir3, dir3) = temp();
    let gw = ladder
        .gateway_with(
            "signalbox_fixture_reviewer",
            "review = \"escalate\"",
            &dir3,
            "max_request_usd = 0.000000001",
        )
        .await;
    let reply = chat(&gw, &question("Hello")).await;
    assert_eq!(content(&reply), "First.");
    assert_eq!(reply.header("x-signalbox-escalations"), "");
    let request_id = reply.header("x-request-id").to_owned();
    drop(gw);
    let line = decision_line(&dir3, &request_id).await;
    let notes = line["outcome"]["reviews"].to_string();
    assert!(notes.contains("max_request_usd"), "{notes}");
}

fn streamed(text: &str) -> Value {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// The number of reviews the gateway's metrics counted.
fn reviews(gw: &TestGateway) -> f64 {
    gw.gateway
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("signalbox_answer_reviews_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_stream_reaches_the_client_only_once_accepted() {
    let ladder = Ladder::start().await;
    ladder
        .cheap
        .set_default(Upstream::ok().text("I don't know, sorry."));
    ladder
        .strong
        .set_default(Upstream::ok().text("Paris is the capital of France."));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway_with(
            "signalbox_policy_cascade",
            CASCADE,
            &dir,
            "review_streams = \"hold\"",
        )
        .await;
    let reply = chat(&gw, &streamed("What is the capital of France?")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.text();
    // Only the accepted attempt's bytes: the whole stream, ended properly.
    assert_eq!(streamed_text(&body), "Paris is the capital of France.");
    assert!(!body.contains("know"), "the refused stream leaked: {body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(reply.header("x-signalbox-target"), "strong");
    assert_eq!(reply.header("x-signalbox-escalations"), "cheap: refusal");
    // Both answers were reviewed (the last rung is accepted by the policy unread).
    assert_eq!(reviews(&gw), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_check_reviews_the_first_tokens_once_and_then_lets_the_stream_through() {
    let ladder = Ladder::start().await;
    ladder.strong.set_default(Upstream::ok().text("Strong."));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway_with(
            "signalbox_policy_cascade",
            CASCADE,
            &dir,
            "review_streams = { first_tokens = 3 }",
        )
        .await;

    // A refusal in the first three tokens: escalated before the client saw a byte.
    ladder
        .cheap
        .enqueue(Upstream::ok().text("I don't know that one, sorry."));
    let reply = chat(&gw, &streamed("Who?")).await;
    assert_eq!(streamed_text(&reply.text()), "Strong.");
    assert_eq!(reply.header("x-signalbox-escalations"), "cheap: refusal");

    // Past the window the stream is the client's: the check ran once, on the first
    // three tokens, and whatever comes after can no longer be escalated.
    ladder
        .cheap
        .enqueue(Upstream::ok().text("Perhaps it was Ada; I don't know for sure."));
    let before = reviews(&gw);
    let reply = chat(&gw, &streamed("Who?")).await;
    assert_eq!(
        streamed_text(&reply.text()),
        "Perhaps it was Ada; I don't know for sure."
    );
    assert_eq!(reply.header("x-signalbox-target"), "cheap");
    assert_eq!(reviews(&gw) - before, 1.0);
    assert_eq!(ladder.strong.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hold_streams_are_not_reviewed() {
    let ladder = Ladder::start().await;
    ladder.cheap.set_default(Upstream::ok().text("First."));
    let (_dir, dir) = temp();
    let gw = ladder
        .gateway("signalbox_fixture_reviewer", "review = \"escalate\"", &dir)
        .await;
    let reply = chat(&gw, &streamed("Hello")).await;
    assert_eq!(streamed_text(&reply.text()), "First.");
    assert_eq!(reply.header("x-signalbox-target"), "cheap");
    assert_eq!(reviews(&gw), 0.0);
    assert_eq!(ladder.strong.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_probabilities_are_asked_of_the_targets_that_return_them() {
    let ladder = Ladder::start().await;
    ladder
        .cheap
        .set_default(Upstream::ok().text("Paris.").logprobs(&[-0.05, -0.1]));
    let (_dir, dir) = temp();
    let toml = ladder
        .config(
            "signalbox_policy_cascade",
            &format!("{CASCADE}\n[tenants.policy_config.checks]\nmin_mean_logprob = -1.0"),
            &dir,
            "",
        )
        .replace("id = \"cheap\"\n", "id = \"cheap\"\nlogprobs = true\n");
    let gw = TestGateway::start(&toml).await;

    let reply = chat(&gw, &question("What is the capital of France?")).await;
    assert_eq!(content(&reply), "Paris.");
    let sent = &ladder.cheap.requests()[0];
    assert_eq!(sent.body["logprobs"], true);
    // Byte for byte as the client sent it, with the model replaced and the field added.
    assert!(
        std::str::from_utf8(&sent.raw_body)
            .unwrap()
            .ends_with(r#","logprobs":true}"#),
        "{:?}",
        sent.raw_body
    );

    // A client that set `logprobs` itself is left alone.
    let mut own = question("And of Spain?");
    own["logprobs"] = json!(false);
    chat(&gw, &own).await;
    assert_eq!(ladder.cheap.requests()[1].body["logprobs"], false);

    // Without a reviewing policy nothing is added.
    drop(gw);
    let (_dir2, dir2) = temp();
    let plain = ladder
        .config(
            "signalbox_fixture_reviewer",
            "review = \"accept\"",
            &dir2,
            "",
        )
        .replace("id = \"cheap\"\n", "id = \"cheap\"\nlogprobs = true\n")
        .replace("signalbox_fixture_reviewer", "signalbox_policy_weighted")
        .replace(
            "review = \"accept\"",
            "[tenants.policy_config.targets]\ncheap = 1",
        );
    let gw = TestGateway::start(&plain).await;
    chat(&gw, &question("Hello")).await;
    assert!(ladder.cheap.requests()[2].body.get("logprobs").is_none());
}
