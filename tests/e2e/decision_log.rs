//! The decision log: one JSON line per routed request with the features the policy saw
//! (message text only for tenants that opt in), the snapshot, the decision and the
//! outcome.

use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::{KEY, TestGateway, config, send};
use serde_json::Value;
use std::time::Duration;

const TEXT_KEY: &str = "sb-test-textual-key";
const SECRET_TEXT: &str = "the launch code is swordfish";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_a_line_with_features_decision_and_outcome() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let hash = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(TEXT_KEY));
    let extra = format!(
        "[[tenants]]\nid = \"textual\"\nkey_hashes = [\"{hash}\"]\nsafe_route = [\"a\"]\nlog_message_text = true\n\n[decision_log]\npath = '{}'\n",
        log.display()
    );
    let toml = config(
        &[("up", "openai", &format!("{}/v1", up.url()))],
        &[("a", "up", "m"), ("b", "up", "m")],
        &extra,
    );
    let gw = TestGateway::start(&toml).await;
    let url = gw.url("/v1/chat/completions");
    let chat = |model: &str| {
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"{SECRET_TEXT}"}}],"max_tokens":50}}"#
        )
    };
    let served = send("POST", &url, Some(KEY), Some(chat("m").as_bytes())).await;
    assert_eq!(served.status, 200);
    let rejected = send("POST", &url, Some(KEY), Some(chat("nope").as_bytes())).await;
    assert_eq!(rejected.status, 404);
    let textual = send("POST", &url, Some(TEXT_KEY), Some(chat("m").as_bytes())).await;
    assert_eq!(textual.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}"))
    };

    let line = by_id(served.header("x-request-id"));
    assert_eq!(line["tenant"], "acme");
    assert_eq!(line["request"]["model"], "m");
    assert_eq!(line["request"]["max_output_tokens"], 50);
    assert_eq!(line["request"]["message_count"], 1);
    assert_eq!(line["request"]["message_chars"], SECRET_TEXT.len());
    assert!(
        line["request"]["messages"].is_null(),
        "text logged without opting in"
    );
    assert_eq!(line["snapshot"].as_array().unwrap().len(), 2);
    assert_eq!(
        line["decision"]["targets"][0],
        served.header("x-signalbox-target")
    );
    assert_eq!(
        line["decision"]["policy"],
        served.header("x-signalbox-policy")
    );
    assert_eq!(line["outcome"]["status"], 200);
    assert_eq!(line["outcome"]["target"], "a");
    assert!(line["outcome"]["input_tokens"].as_u64().unwrap() > 0);

    let line = by_id(rejected.header("x-request-id"));
    assert_eq!(line["decision"]["rejection"]["status"], 404);
    assert_eq!(line["outcome"]["status"], 404);

    let line = by_id(textual.header("x-request-id"));
    assert_eq!(line["request"]["messages"][0]["text"], SECRET_TEXT);
    assert_eq!(line["request"]["messages"][0]["role"], "user");
    // Only the opted-in tenant's line holds the text.
    assert_eq!(text.matches(SECRET_TEXT).count(), 1);
    for secret in [KEY, TEXT_KEY, "upstream-secret"] {
        assert!(!text.contains(secret));
    }
}

/// The log's files after `requests` sequential chats through a gateway whose
/// `[decision_log]` rotates at `max_bytes` keeping `max_files`: each file's lines
/// (oldest file first) and the request ids sent, in order. Returns once the last
/// request's line is written.
struct Rotated {
    /// `(generation, text)`, oldest first (generation 0 is the live file).
    files: Vec<(u32, String)>,
    /// The request ids, in the order sent.
    sent: Vec<String>,
    /// Kept for a look through the dashboard.
    dashboard: crate::dashboard::Dashboard,
}

async fn rotate_through(max_bytes: u64, max_files: u32, requests: usize) -> Rotated {
    use crate::deploy::{lifecycle_config, upstream};
    use std::time::Instant;
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let toml = lifecycle_config(&up.url(), "")
        + &format!(
            "\n[decision_log]\npath = '{}'\nmax_bytes = {max_bytes}\nmax_files = {max_files}\n",
            log.display()
        );
    let gw = TestGateway::start(&toml).await;
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let mut sent = Vec::new();
    for _ in 0..requests {
        let r = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(KEY),
            Some(body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        sent.push(r.header("x-request-id").to_owned());
    }
    let read = || {
        let mut files = Vec::new();
        for n in (0..=max_files + 2).rev() {
            if let Ok(text) = std::fs::read_to_string(signalbox::decision_log::generation(&log, n))
            {
                files.push((n, text));
            }
        }
        files
    };
    // Lines are written by a background thread, soon after each request ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = format!("\"request_id\":\"{}\"", sent[requests - 1]);
    let files = loop {
        let files = read();
        if files.iter().any(|(_, text)| text.contains(&last)) {
            break files;
        }
        assert!(Instant::now() < deadline, "the last line never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Rotated {
        files,
        sent,
        dashboard: crate::dashboard::Dashboard {
            gw,
            _upstream: up,
            dir,
        },
    }
}

impl Rotated {
    /// The request ids of the lines, file by file from the oldest, checking that every
    /// file is whole lines within `max_bytes` but for its last line.
    fn ids(&self, max_bytes: u64) -> Vec<String> {
        let mut ids = Vec::new();
        for (n, text) in &self.files {
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "generation {n} ends mid-line"
            );
            let last_line = text
                .trim_end_matches('\n')
                .rsplit('\n')
                .next()
                .unwrap_or("");
            let before_last = text.len().saturating_sub(last_line.len() + 1);
            assert!(
                before_last as u64 <= max_bytes,
                "generation {n} is {} bytes, more than one line past {max_bytes}",
                text.len()
            );
            for line in text.lines() {
                let entry: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("generation {n}: broken line ({e}): {line}"));
                ids.push(entry["request_id"].as_str().unwrap().to_owned());
            }
        }
        ids
    }

    fn rotated_files(&self) -> usize {
        self.files.iter().filter(|(n, _)| *n > 0).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_rotates_by_size_with_every_line_in_exactly_one_file() {
    // A decision line is several hundred bytes: a few per file.
    let (max_bytes, max_files) = (2500, 100);
    let run = rotate_through(max_bytes, max_files, 30).await;
    let ids = run.ids(max_bytes);
    assert_eq!(
        ids, run.sent,
        "every line once, oldest file first, in order"
    );
    assert!(
        run.rotated_files() >= 3,
        "rotated only {} times",
        run.rotated_files()
    );
    assert!(run.rotated_files() <= max_files as usize);

    // The dashboard finds a decision that now lives in a rotated file.
    let d = &run.dashboard;
    let (cookie, _) = d.sign_in(crate::deploy::OPERATOR).await;
    let oldest = &run.sent[0];
    let r = d
        .get(
            &format!("/dashboard/api/tenants/acme/decisions/{oldest}"),
            &cookie,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["request_id"], oldest.as_str());
    let listed = d
        .get("/dashboard/api/tenants/acme/decisions", &cookie)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(
        listed.json()["data"].as_array().unwrap().len(),
        run.sent.len(),
        "the tail reads on into the rotated files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_max_files_rotated_files_are_kept() {
    let (max_bytes, max_files) = (2500, 2);
    let run = rotate_through(max_bytes, max_files, 30).await;
    assert_eq!(run.rotated_files(), max_files as usize, "{:?}", run.files);
    // What is left is the newest lines, each once, in order.
    let ids = run.ids(max_bytes);
    assert!(!ids.is_empty() && ids.len() < run.sent.len(), "{ids:?}");
    assert_eq!(
        ids,
        run.sent[run.sent.len() - ids.len()..],
        "the newest, in order"
    );
}
