//! `signalbox replay`, run as a real process on a committed fixture (and, when the
//! routing-eval data is beside the workspace, on a real file).

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

const STRONG: &str = "gpt-4-1106-preview";
const WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";

/// Twelve rows of RouteLLM's GSM8K and MMLU outcomes (Apache-2.0; see
/// `tests/fixtures/README.md`).
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/replay.jsonl")
}

fn complexity() -> PathBuf {
    wasm("signalbox_policy_complexity")
}

fn replay(args: &[&str]) -> Output {
    signalbox(&[&["replay"], args].concat())
}

/// Mean score of `model` over the rows of a JSONL file.
fn model_mean(path: &Path, model: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let scores: Vec<f64> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["models"][model]["score"]
                .as_f64()
                .unwrap()
        })
        .collect();
    scores.iter().sum::<f64>() / scores.len() as f64
}

fn config_file(dir: &Path, threshold: f64) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"strong": "{STRONG}", "weak": "{WEAK}", "threshold": {threshold}}}"#),
    )
    .unwrap();
    path
}

#[test]
fn complexity_sweep_writes_the_report_and_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), 0.1);
    let (out, plot) = (dir.path().join("report.json"), dir.path().join("curve.svg"));
    let o = replay(&[
        "--policy",
        complexity().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        fixture().to_str().unwrap(),
        "--strong",
        STRONG,
        "--weak",
        WEAK,
        "--price",
        &format!("{STRONG}=10,30"),
        "--price",
        &format!("{WEAK}=0.24,0.24"),
        "--sweep",
        "threshold=0:0.4:9",
        "--bootstrap",
        "100",
        "--out",
        out.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("curve over 9 points: APGR"), "{t}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for key in ["policy", "baselines", "curve", "apgr", "cpt50", "cpt80"] {
        assert!(report.get(key).is_some(), "no `{key}` in {report:#}");
    }
    let curve = report["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 9);
    for point in curve {
        for key in ["strong_share", "quality", "cost", "pgr"] {
            assert!(point[key].is_f64(), "no `{key}` in {point}");
        }
    }
    let apgr = report["apgr"].as_f64().unwrap();
    assert!((0.0..=2.0).contains(&apgr), "{apgr}");
    assert!(
        report["ci"]["apgr"]["low"].as_f64().unwrap()
            <= report["ci"]["apgr"]["high"].as_f64().unwrap()
    );

    // The baselines are the dataset's own figures.
    let b = &report["baselines"];
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9;
    assert!(close(
        &b["always_strong"]["quality"],
        model_mean(&fixture(), STRONG)
    ));
    assert!(close(
        &b["always_weak"]["quality"],
        model_mean(&fixture(), WEAK)
    ));
    assert!(close(&b["always_strong"]["pgr"], 1.0) && close(&b["always_weak"]["pgr"], 0.0));
    assert!(close(&b["always_strong"]["strong_share"], 1.0));
    assert!(b["oracle"]["pgr"].as_f64().unwrap() >= 1.0);
    let share = report["policy"]["strong_share"].as_f64().unwrap();
    assert!(close(&b["random"]["pgr"], share));
    assert_eq!(report["policy"]["failed"], 0);

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    for needle in [
        "calls to the strong model",
        "mean quality",
        "random (expected)",
        "oracle",
        "always strong",
        "</svg>",
    ] {
        assert!(svg.contains(needle), "no `{needle}` in the chart");
    }
}

#[test]
fn malformed_lines_and_unknown_models_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let fixture_text = std::fs::read_to_string(fixture()).unwrap();
    let first = fixture_text.lines().next().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{first}\n{{\"id\": \"x\", \"prompt\": 3}}\n")).unwrap();
    let policy = default_policy();
    let common = |dataset: &Path, strong: &str| -> Output {
        replay(&[
            "--policy",
            policy.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--strong",
            strong,
            "--weak",
            WEAK,
            "--price",
            &format!("{STRONG}=10,30"),
            "--price",
            &format!("{WEAK}=0.24,0.24"),
            "--bootstrap",
            "0",
        ])
    };
    let o = common(&bad, STRONG);
    let t = output_text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("bad.jsonl line 2: invalid type: integer `3`, expected a string"),
        "{t}"
    );

    let o = common(&fixture(), "gpt-5");
    let t = output_text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "the dataset has no model `gpt-5`; models present: {STRONG}, {WEAK}"
        )),
        "{t}"
    );

    // The default policy serves the model asked for (the strong one by default).
    let o = common(&fixture(), STRONG);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("policy                   "), "{t}");
}

/// The routing-eval folder, if it is beside the workspace (or named by
/// `SIGNALBOX_ROUTING_EVAL`).
fn routing_eval() -> Option<PathBuf> {
    let dir = std::env::var_os("SIGNALBOX_ROUTING_EVAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/routing-eval")
        });
    dir.join("routellm_gsm8k.jsonl").exists().then_some(dir)
}

#[test]
fn baselines_reproduce_the_datasets_per_model_means() {
    let Some(dir) = routing_eval() else {
        eprintln!(
            "skipped: the routing-eval data is not at ../shared/data/routing-eval (set SIGNALBOX_ROUTING_EVAL)"
        );
        return;
    };
    let dataset = dir.join("routellm_gsm8k.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report.json");
    let config = config_file(tmp.path(), 0.1);
    let o = replay(&[
        "--policy",
        complexity().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
        "--strong",
        STRONG,
        "--weak",
        WEAK,
        "--bootstrap",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = output_text(&o);
    assert!(o.status.success(), "{t}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let b = &report["baselines"];
    assert!(
        (b["always_strong"]["quality"].as_f64().unwrap() - model_mean(&dataset, STRONG)).abs()
            < 1e-9
    );
    assert!(
        (b["always_weak"]["quality"].as_f64().unwrap() - model_mean(&dataset, WEAK)).abs() < 1e-9
    );
    // Prices came from the models.json beside the data: GPT-4 at $10/$30 per million.
    assert_eq!(report["targets"][0]["price"]["input"], 10.0);
    assert!(b["oracle"]["pgr"].as_f64().unwrap() >= 1.0);
}

/// Cost-aware complexity, through the real component: five rows with one prompt (so
/// one gain; the prompt must score above 0, as this multi-step word problem does) and
/// input sizes from 5 to 50,000 tokens. Plain thresholds send all five
/// or none; scaled by each row's extra cost on the strong model, the cheap rows clear
/// bars the dear ones do not, so the curve has every share in between and the dear
/// rows go first.
#[test]
fn cost_aware_complexity_weighs_each_request_s_cost() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = "Josh decides to try flipping a house.  He buys a house for $80,000 and then puts in $50,000 in repairs.  This increased the value of the house by 150%.  How much profit did he make?";
    let rows: String = [5, 50, 500, 5_000, 50_000]
        .iter()
        .enumerate()
        .map(|(i, tokens)| {
            serde_json::json!({
                "id": format!("r{i}"), "prompt": prompt, "input_tokens": tokens,
                "models": {STRONG: {"score": 1.0, "output_tokens": 100},
                           WEAK: {"score": 0.0, "output_tokens": 100}}
            })
            .to_string()
                + "\n"
        })
        .collect();
    let dataset = dir.path().join("rows.jsonl");
    std::fs::write(&dataset, rows).unwrap();
    let run = |cost_aware: bool| -> Value {
        let config = dir.path().join(format!("config-{cost_aware}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{"strong": "{STRONG}", "weak": "{WEAK}", "threshold": 0.1, "cost_aware": {cost_aware}}}"#
            ),
        )
        .unwrap();
        let out = dir.path().join(format!("report-{cost_aware}.json"));
        let o = replay(&[
            "--policy",
            complexity().to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--strong",
            STRONG,
            "--weak",
            WEAK,
            "--price",
            &format!("{STRONG}=10,30"),
            "--price",
            &format!("{WEAK}=0.24,0.24"),
            "--sweep",
            "threshold=0:1:101",
            "--bootstrap",
            "10",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", output_text(&o));
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    let shares = |report: &Value| -> Vec<f64> {
        let mut s: Vec<f64> = report["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["strong_share"].as_f64().unwrap() * 5.0).round() / 5.0)
            .collect();
        s.dedup();
        s
    };
    let plain = run(false);
    assert_eq!(shares(&plain), [1.0, 0.0], "{plain:#}");
    let costed = run(true);
    let steps = shares(&costed);
    // From all five rows to none, one dear row after another: shares in between (how
    // many the grid resolves depends on the prompt's gain), never rising again.
    assert_eq!(steps.first(), Some(&1.0), "{costed:#}");
    assert_eq!(steps.last(), Some(&0.0), "{costed:#}");
    assert!(steps.len() >= 4, "{steps:?}");
    assert!(steps.windows(2).all(|w| w[0] > w[1]), "{steps:?}");
    // Same gain, same share of strong calls: the cost-aware policy sent the cheap rows,
    // so at every share between 0 and 1 it spends less than a random pick would.
    for point in costed["curve"].as_array().unwrap() {
        let share = point["strong_share"].as_f64().unwrap();
        let strong_cost = costed["baselines"]["always_strong"]["cost"]
            .as_f64()
            .unwrap();
        if share > 0.0 && share < 1.0 {
            assert!(
                point["cost"].as_f64().unwrap() < share * strong_cost,
                "{point}"
            );
        }
    }
}
