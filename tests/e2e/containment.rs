//! Hostile policies are contained: each misdeed becomes its own typed error, the
//! faulty instance is discarded, and the binding keeps serving.

use crate::support::*;
use signalbox::policy::{PolicyBinding, PolicyError, RouteDecision, TenantContext};
use std::time::{Duration, Instant};

fn hostile(tenant: &str) -> PolicyBinding {
    bind(&hostile_policy(), tenant, "{}", targets())
}

fn act(binding: &PolicyBinding, what: &str) -> Result<RouteDecision, PolicyError> {
    binding.route(&request("any", &[("act", what)]), &healthy(4))
}

fn instances_created(binding: &PolicyBinding) -> u64 {
    binding.instances_created()
}

/// After a failure the binding must still answer normally.
fn assert_still_serves(binding: &PolicyBinding) {
    let decision = act(binding, "").unwrap();
    assert!(matches!(decision, RouteDecision::Route { ref targets, .. } if targets == &[0]));
}

/// Runs a misdeed on a binding with one pooled instance and checks that the instance
/// was discarded: the next call needs a new one.
fn fail_and_replace(binding: &PolicyBinding, what: &str) -> PolicyError {
    act(binding, "").unwrap();
    assert_eq!(binding.idle_instances(), 1);
    let before = instances_created(binding);
    let err = act(binding, what).unwrap_err();
    assert_eq!(
        binding.idle_instances(),
        0,
        "a failed instance went back to the pool"
    );
    assert_still_serves(binding);
    assert_eq!(instances_created(binding), before + 1);
    err
}

#[test]
fn an_infinite_loop_is_stopped_near_the_deadline_while_others_are_served() {
    let binding = hostile("spinner");
    let deadline = engine().config().deadline;
    act(&binding, "").unwrap(); // warm the pool

    let (served, late) = std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            let (mut served, mut late) = (0, 0);
            let until = Instant::now() + Duration::from_millis(50);
            while Instant::now() < until {
                // The deadline is wall-clock time: on a loaded 2-core machine a call
                // descheduled mid-way can miss it. Count those, don't fail on them.
                match act(&binding, "") {
                    Ok(_) => served += 1,
                    Err(PolicyError::Deadline(_)) => late += 1,
                    Err(e) => panic!("unexpected error while another call spins: {e}"),
                }
            }
            (served, late)
        });
        let mut took = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let err = act(&binding, "spin").unwrap_err();
            took.push(started.elapsed());
            assert_eq!(err, PolicyError::Deadline(deadline));
        }
        took.sort();
        // The median run, so one descheduling of this thread cannot fail the test.
        assert!(
            took[2] < deadline * 3,
            "stopped after {:?} (all runs {took:?}), deadline {deadline:?}",
            took[2]
        );
        other.join().unwrap()
    });
    assert!(
        served > 10 && late * 10 <= served,
        "{served} calls served, {late} late, while another spun"
    );
    assert_eq!(binding.calls().deadlines(), 5 + late);
    assert_still_serves(&binding);
    assert!(matches!(
        fail_and_replace(&binding, "spin"),
        PolicyError::Deadline(_)
    ));
}

#[test]
fn a_loop_after_an_idle_spell_is_still_stopped() {
    // An idle engine parks its deadline clock; the first call after the idle spell
    // must wake it, or a runaway would never be stopped. An engine of its own, so no
    // other test keeps the clock awake.
    let deadline = Duration::from_millis(20);
    let engine = signalbox::policy::PolicyEngine::new(signalbox::policy::EngineConfig {
        deadline,
        ..Default::default()
    })
    .unwrap();
    let binding = engine
        .load_file(&hostile_policy())
        .unwrap()
        .bind(TenantContext::new("sleeper"), "{}", targets())
        .unwrap();
    let binding = std::sync::Arc::new(binding);
    for _ in 0..3 {
        act(&binding, "").unwrap();
        std::thread::sleep(deadline * 5);
        // On its own thread, so a call that is never stopped fails the test instead
        // of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let spinning = binding.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let _ = tx.send((act(&spinning, "spin"), started.elapsed()));
        });
        let (result, took) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a loop started after an idle spell was never stopped");
        assert_eq!(result.unwrap_err(), PolicyError::Deadline(deadline));
        assert!(
            took < deadline * 20,
            "stopped after {took:?}, deadline {deadline:?}"
        );
    }
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let binding = hostile("hog");
    let err = fail_and_replace(&binding, "hog");
    assert_eq!(
        err,
        PolicyError::MemoryLimit(engine().config().memory_limit)
    );
    assert_eq!(err.kind(), "memory_limit");
}

#[test]
fn a_panic_is_a_trap_that_carries_the_panic_message() {
    let binding = hostile("panicky");
    match fail_and_replace(&binding, "panic") {
        PolicyError::Trap(message) => {
            assert!(message.contains("panics on purpose"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn invalid_decisions_are_refused_with_the_reason() {
    let binding = hostile("liar");
    for (what, needle) in [
        ("bogus", "target index 99 does not exist"),
        ("empty", "lists no targets"),
        ("status", "status 200"),
    ] {
        match act(&binding, what).unwrap_err() {
            PolicyError::InvalidDecision(message) => {
                assert!(message.contains(needle), "{what}: {message}")
            }
            other => panic!("{what}: expected an invalid decision, got {other:?}"),
        }
    }
    // An invalid answer is the policy's logic, not a broken instance: it is reused.
    assert_eq!(instances_created(&binding), 1);
}

#[test]
fn a_rejected_config_is_a_bad_config_error() {
    let policy = engine().load_file(&hostile_policy()).unwrap();
    let err = policy
        .bind(
            TenantContext::new("picky"),
            r#"{"accept": false}"#,
            targets(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::BadConfig("this policy refuses its config: accept is false".into())
    );
    let err = policy
        .bind(TenantContext::new("picky"), r#"{"acept": true}"#, targets())
        .unwrap_err();
    assert!(
        matches!(&err, PolicyError::BadConfig(m) if m.contains("unknown field `acept`")),
        "{err}"
    );
}

#[test]
fn a_loop_in_activation_is_stopped_at_the_activation_deadline() {
    let policy = engine().load_file(&hostile_policy()).unwrap();
    let started = Instant::now();
    let err = policy
        .bind(
            TenantContext::new("slow"),
            r#"{"spin_on_activate": true}"#,
            targets(),
        )
        .unwrap_err();
    let deadline = engine().config().activation_deadline;
    assert_eq!(err, PolicyError::Deadline(deadline));
    assert!(
        started.elapsed() < deadline * 3,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn guest_output_and_logs_do_not_disturb_the_call() {
    let binding = hostile("chatty");
    let mut late = 0;
    for _ in 0..200 {
        // The deadline is wall-clock time: on a loaded 2-core machine a call
        // descheduled mid-way can miss it. Count those, don't fail on them.
        match act(&binding, "log") {
            Ok(RouteDecision::Route { .. }) => {}
            Err(PolicyError::Deadline(_)) => late += 1,
            other => panic!("logging disturbed the call: {other:?}"),
        }
    }
    assert!(late <= 20, "{late} of 200 calls missed the deadline");
    // The per-tenant log budget (100 lines in a burst) dropped the excess.
    assert!(binding.tenant().log.dropped() > 0);
}

#[test]
fn wasi_grants_no_environment_and_no_files() {
    let binding = hostile("nosy");
    match act(&binding, "env").unwrap() {
        RouteDecision::Route { reason, .. } => assert_eq!(reason, "env:0"),
        other => panic!("{other:?}"),
    }
    // No directory is preopened, so the guest's libc refuses the path itself.
    match act(&binding, "file").unwrap() {
        RouteDecision::Route { reason, .. } => {
            assert!(reason.starts_with("file:Err"), "a file was read: {reason}")
        }
        other => panic!("{other:?}"),
    }
}
