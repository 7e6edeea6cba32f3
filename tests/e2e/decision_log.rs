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
