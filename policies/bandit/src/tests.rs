use super::*;
use signalbox_sdk::testing::{Harness, reset, state_value};

fn targets() -> Vec<Target> {
    vec![
        Target::new("premium", "big").price(30.0, 60.0),
        Target::new("value", "mid").price(5.0, 10.0),
        Target::new("budget", "small")
            .price(0.0, 0.0)
            .context_window(2_000),
    ]
}

fn outcome(id: &str, target: u32, status: u16, cost: f64) -> Outcome {
    Outcome {
        request_id: id.into(),
        ending: Ending::Completed,
        target: Some(target),
        failed_targets: Vec::new(),
        status,
        latency_ms: 100,
        ttft_ms: None,
        input_tokens: 20,
        output_tokens: 10,
        cost_usd: cost,
        escalated_targets: vec![],
    }
}

/// A request no target answered: every attempt (in `tried` order) failed.
fn total_failure(id: &str, tried: &[u32]) -> Outcome {
    Outcome {
        request_id: id.into(),
        ending: Ending::Failed,
        target: None,
        failed_targets: tried.to_vec(),
        status: 503,
        latency_ms: 100,
        ttft_ms: None,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        escalated_targets: vec![],
    }
}

fn feedback(id: &str, target: u32, score: f32) -> Feedback {
    Feedback {
        request_id: id.into(),
        target,
        score,
    }
}

fn stats(class: &str, target: &str) -> (f64, f64) {
    state_value(&arm_stats::key(class, target))
        .map(|v| serde_json::from_slice(&v).unwrap())
        .unwrap_or((0.0, 0.0))
}

/// A small deterministic generator for simulated scores.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `rounds` requests through `h`: the primary serves, its cost and a noisy score
/// around its quality are reported. Returns the primary of each round.
fn simulate(h: &Harness<Bandit>, rounds: usize, quality: [f64; 3], cost: [f64; 3]) -> Vec<u32> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut chosen = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let id = format!("req-{i}");
        let req = RequestBuilder::chat("any").id(&id).user("hello").build();
        let t = h.route_healthy(&req).primary().unwrap();
        chosen.push(t);
        h.outcome(&outcome(&id, t, 200, cost[t as usize]));
        let score = (quality[t as usize] + (rng.unit() - 0.5) * 0.4).clamp(0.0, 1.0);
        h.feedback(&feedback(&id, t, score as f32));
    }
    chosen
}

fn share(chosen: &[u32], target: u32) -> f64 {
    chosen.iter().filter(|&&t| t == target).count() as f64 / chosen.len() as f64
}

// Quality 0.9 / 0.75 / 0.4 and cost 7.5e-4 / 1.25e-4 / 0: with a cost weight of 400
// the rewards are about 0.6 / 0.7 / 0.4, so `value` is best; without cost, `premium`.
const QUALITY: [f64; 3] = [0.9, 0.75, 0.4];
const COST: [f64; 3] = [7.5e-4, 1.25e-4, 0.0];

#[test]
fn thompson_sampling_converges_on_the_best_reward_for_the_money() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"cost_weight": 400}"#, targets()).unwrap();
    let chosen = simulate(&h, 2_000, QUALITY, COST);
    let last = share(&chosen[1_500..], 1);
    assert!(last >= 0.8, "value got {last:.2} of the last 500");
}

#[test]
fn ucb_converges_too() {
    reset();
    let h = Harness::<Bandit>::new(
        r#"{"algorithm": "ucb", "cost_weight": 400, "exploration": 0.5}"#,
        targets(),
    )
    .unwrap();
    let chosen = simulate(&h, 2_000, QUALITY, COST);
    assert_eq!(&chosen[..3], &[0, 1, 2], "untried arms first");
    let last = share(&chosen[1_500..], 1);
    assert!(last >= 0.8, "value got {last:.2} of the last 500");
}

#[test]
fn without_a_cost_weight_quality_alone_wins() {
    reset();
    let h = Harness::<Bandit>::new("{}", targets()).unwrap();
    let chosen = simulate(&h, 1_500, QUALITY, COST);
    let last = share(&chosen[1_000..], 0);
    assert!(last >= 0.8, "premium got {last:.2} of the last 500");
}

#[test]
fn feedback_replaces_the_success_reward_without_counting_twice() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"cost_weight": 100}"#, targets()).unwrap();
    h.outcome(&outcome("r1", 1, 200, 0.001));
    assert_eq!(stats("all", "value"), (1.0, 0.9));
    let slot = pending::key("r1", 1024).unwrap();
    assert!(state_value(&slot).is_some());

    h.feedback(&feedback("r1", 1, 0.3));
    let (pulls, reward) = stats("all", "value");
    assert_eq!(pulls, 1.0);
    assert!((reward - 0.2).abs() < 1e-6, "{reward}");
    assert!(state_value(&slot).is_none(), "the scratch slot is deleted");

    // A second score for the same request changes nothing.
    h.feedback(&feedback("r1", 1, 1.0));
    assert_eq!(stats("all", "value").0, 1.0);
    assert!((stats("all", "value").1 - 0.2).abs() < 1e-6);

    // A failure counts zero; its feedback can still correct it.
    h.outcome(&outcome("r2", 2, 502, 0.0));
    assert_eq!(stats("all", "budget"), (1.0, 0.0));
    h.feedback(&feedback("r2", 2, 0.5));
    assert_eq!(stats("all", "budget"), (1.0, 0.5));
}

#[test]
fn feedback_before_the_outcome_is_counted_once_by_the_outcome() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"cost_weight": 100}"#, targets()).unwrap();
    h.feedback(&feedback("early", 0, 0.8));
    assert_eq!(stats("all", "premium"), (0.0, 0.0));
    h.outcome(&outcome("early", 0, 200, 0.002));
    let (pulls, reward) = stats("all", "premium");
    assert_eq!(pulls, 1.0);
    assert!((reward - 0.6).abs() < 1e-6, "{reward}");
    assert!(state_value(&pending::key("early", 1024).unwrap()).is_none());
}

#[test]
fn feedback_whose_slot_was_reused_is_ignored() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"pending_slots": 1}"#, targets()).unwrap();
    h.outcome(&outcome("old", 0, 200, 0.0));
    h.outcome(&outcome("new", 0, 200, 0.0));
    h.feedback(&feedback("old", 0, 0.0));
    assert_eq!(stats("all", "premium"), (2.0, 2.0), "old keeps its success");
    h.feedback(&feedback("new", 0, 0.5));
    assert_eq!(stats("all", "premium"), (2.0, 1.5));
}

#[test]
fn scratch_slots_stay_bounded() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"pending_slots": 8}"#, targets()).unwrap();
    for i in 0..500 {
        h.outcome(&outcome(&format!("r{i}"), 1, 200, 0.0));
    }
    assert!(state_value("bandit/pending/7").is_some());
    assert!(state_value("bandit/pending/8").is_none());

    // Without slots, feedback is ignored and nothing per request is stored.
    reset();
    let h = Harness::<Bandit>::new(r#"{"pending_slots": 0}"#, targets()).unwrap();
    h.outcome(&outcome("r", 1, 200, 0.0));
    h.feedback(&feedback("r", 1, 0.0));
    assert_eq!(stats("all", "value"), (1.0, 1.0));
}

#[test]
fn classes_learn_separately() {
    reset();
    let h = Harness::<Bandit>::new(
        r#"{"class_by": "tag", "classes": ["code", "chat"]}"#,
        targets(),
    )
    .unwrap();
    for i in 0..300 {
        for (tag, good) in [("code", 0u32), ("chat", 1u32), ("other-tag", 2u32)] {
            let id = format!("{tag}-{i}");
            let req = RequestBuilder::chat("any").id(&id).tag(tag).build();
            let t = h.route_healthy(&req).primary().unwrap();
            h.outcome(&outcome(&id, t, 200, 0.0));
            h.feedback(&feedback(&id, t, if t == good { 1.0 } else { 0.2 }));
        }
    }
    let primary = |tag: &str| {
        let req = RequestBuilder::chat("any").id("probe").tag(tag).build();
        match h.route_healthy(&req) {
            Decision::Route { targets, reason } => (targets[0], reason),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(primary("code").0, 0);
    assert!(primary("code").1.ends_with(", class code"));
    assert_eq!(primary("chat").0, 1);
    let (t, reason) = primary("anything");
    assert_eq!(t, 2);
    assert!(reason.ends_with(", class other"), "{reason}");
    assert!(stats("code", "premium").0 > stats("code", "value").0);
}

#[test]
fn length_classes_are_buckets_of_input_tokens() {
    reset();
    let h = Harness::<Bandit>::new(
        r#"{"class_by": "length", "length_buckets": [100, 1000]}"#,
        targets(),
    )
    .unwrap();
    for (tokens, class) in [
        (10, "tokens<100"),
        (500, "tokens<1000"),
        (1500, "tokens>=1000"),
    ] {
        let req = RequestBuilder::chat("any")
            .id(format!("len-{tokens}"))
            .input_tokens(tokens)
            .max_output_tokens(10)
            .build();
        let Decision::Route { reason, .. } = h.route_healthy(&req) else {
            panic!()
        };
        assert!(reason.ends_with(class), "{reason}");
        h.outcome(&outcome(&format!("len-{tokens}"), 0, 200, 0.0));
        assert_eq!(stats(class, "premium").0, 1.0);
    }
}

#[test]
fn learning_survives_a_new_activation_and_a_reordered_target_list() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"cost_weight": 400}"#, targets()).unwrap();
    simulate(&h, 1_000, QUALITY, COST);
    let before = stats("all", "value");

    // Another version or config, targets in another order: the same keys.
    let mut reordered = targets();
    reordered.reverse();
    let h2 = Harness::<Bandit>::new(
        r#"{"algorithm": "thompson", "cost_weight": 400, "prior": {"alpha": 2, "beta": 2}}"#,
        reordered,
    )
    .unwrap();
    let picks: Vec<u32> = (0..200)
        .map(|i| {
            let req = RequestBuilder::chat("any").id(format!("after-{i}")).build();
            h2.route_healthy(&req).primary().unwrap()
        })
        .collect();
    // `value` is index 1 in both orders.
    assert!(share(&picks, 1) >= 0.8, "{:.2}", share(&picks, 1));
    assert_eq!(stats("all", "value"), before);
}

#[test]
fn unavailable_arms_go_last_and_windows_are_respected() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"arms": ["premium", "budget"]}"#, targets()).unwrap();
    let req = RequestBuilder::chat("any").user("hi").build();
    let d = h.route(
        &req,
        &[Signals::unhealthy(), Signals::default(), Signals::default()],
    );
    assert_eq!(d.targets(), &[2, 0], "only arms, the unhealthy one last");

    let long = RequestBuilder::chat("any").input_tokens(5_000).build();
    assert_eq!(h.route_healthy(&long).targets(), &[0]);
    let huge = Harness::<Bandit>::new(r#"{"arms": ["budget"]}"#, targets()).unwrap();
    let (status, message) = huge.route_ids(&long, &[Signals::default(); 3]).unwrap_err();
    assert_eq!(status, 400);
    assert!(message.contains("5512 tokens"), "{message}");

    // Outcomes of targets that are not arms (a safe route) teach nothing.
    h.outcome(&outcome("x", 1, 200, 0.0));
    assert_eq!(stats("all", "value"), (0.0, 0.0));
}

#[test]
fn a_broken_config_is_rejected_naming_the_field() {
    for (config, needle) in [
        (r#"{"algorithm": "epsilon"}"#, "algorithm"),
        (r#"{"cost_weight": -1}"#, "`cost_weight`"),
        (r#"{"class_by": "tag"}"#, "`classes`: list the tags"),
        (
            r#"{"class_by": "tag", "classes": ["a", "a"]}"#,
            "`classes[1]`",
        ),
        (r#"{"class_by": "tag", "classes": ["a/b"]}"#, "`classes[0]`"),
        (r#"{"classes": ["code"]}"#, "`classes`: only used"),
        (
            r#"{"class_by": "length", "length_buckets": [10, 5]}"#,
            "`length_buckets`",
        ),
        (r#"{"prior": {"alpha": 0, "beta": 1}}"#, "`prior.alpha`"),
        (r#"{"prior": {"alpha": 1}}"#, "prior"),
        (r#"{"exploration": 2}"#, "`exploration`: only used"),
        (
            r#"{"algorithm": "ucb", "exploration": 0}"#,
            "`exploration`: must be above 0",
        ),
        (
            r#"{"arms": ["premium", "gpt-9"]}"#,
            "`arms[1]`: no target has the id `gpt-9`",
        ),
        (r#"{"arms": []}"#, "`arms`"),
        (r#"{"pending_slots": 100000}"#, "`pending_slots`"),
        (
            r#"{"class_by": "length", "pending_slots": 0}"#,
            "`pending_slots`",
        ),
        (r#"{"cost_wieght": 1}"#, "unknown field `cost_wieght`"),
    ] {
        let err = Harness::<Bandit>::new(config, targets())
            .err()
            .unwrap_or_else(|| panic!("accepted {config}"));
        assert!(err.contains(needle), "{config}: {err}");
    }
}

#[test]
fn the_example_config_activates_and_classes_by_tag() {
    reset();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policies/bandit.json"
    ))
    .unwrap();
    let h = Harness::<Bandit>::new(&example, targets()).unwrap();
    let req = RequestBuilder::chat("any").id("e1").tag("code").build();
    let Decision::Route { targets, reason } = h.route_healthy(&req) else {
        panic!()
    };
    assert_eq!(targets.len(), 3);
    assert!(reason.starts_with("thompson draw ") && reason.ends_with(", class code"));
    // The class waits in the request's slot for the outcome.
    let slot = pending::key("e1", 1024).unwrap();
    let record: Pending = serde_json::from_slice(&state_value(&slot).unwrap()).unwrap();
    assert_eq!((record.id.as_str(), record.class.as_str()), ("e1", "code"));
}

#[test]
fn a_total_failure_is_a_zero_reward_pull_of_every_arm_tried() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"algorithm": "ucb"}"#, targets()).unwrap();
    h.outcome(&total_failure("req-1", &[1, 0]));
    assert_eq!(stats("all", "value"), (1.0, 0.0));
    assert_eq!(stats("all", "premium"), (1.0, 0.0));
    assert_eq!(stats("all", "budget"), (0.0, 0.0));
}

#[test]
fn a_fallback_counts_the_failed_arm_and_rewards_the_one_that_answered() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"algorithm": "ucb"}"#, targets()).unwrap();
    let mut answered = outcome("req-2", 2, 200, 0.0);
    answered.failed_targets = vec![0];
    h.outcome(&answered);
    assert_eq!(stats("all", "premium"), (1.0, 0.0));
    assert_eq!(stats("all", "budget"), (1.0, 1.0));
}

#[test]
fn a_rejection_counts_nothing() {
    reset();
    let h = Harness::<Bandit>::new(r#"{"algorithm": "ucb"}"#, targets()).unwrap();
    let mut rejected = total_failure("req-3", &[]);
    rejected.ending = Ending::Rejected;
    rejected.status = 400;
    h.outcome(&rejected);
    for arm in ["premium", "value", "budget"] {
        assert_eq!(stats("all", arm), (0.0, 0.0));
    }
}
