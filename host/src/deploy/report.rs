//! What the admin API shows of a tenant's policies: the active binding with its
//! traffic, the candidate with its comparison, the history, and every stored version
//! with its counters.

use super::{
    Candidate, CandidateMode, Deployment, Routing, TenantBindings, VersionMeta, VersionStats,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The whole report of one tenant.
pub(super) fn tenant_report(
    tenant: &str,
    current: &Routing,
    bindings: &TenantBindings,
    versions: &[VersionMeta],
    stats: &HashMap<String, Arc<VersionStats>>,
) -> Value {
    let active = current.active.version();
    let candidate = current.candidate.as_ref().map(|c| c.deployment.version());
    json!({
        "tenant": tenant,
        "active": deployment_report(&current.active),
        "candidate": current.candidate.as_ref().map(candidate_report),
        "history": bindings
            .history_newest_first()
            .map(|s| json!({
                "version": s.version,
                "name": s.name,
                "config": config_json(&s.config),
            }))
            .collect::<Vec<_>>(),
        "versions": version_reports(versions, bindings, stats, active, candidate),
    })
}

/// Each stored version with its role and its counters since the process started
/// (zeros for a version not called yet).
fn version_reports(
    versions: &[VersionMeta],
    bindings: &TenantBindings,
    stats: &HashMap<String, Arc<VersionStats>>,
    active: &str,
    candidate: Option<&str>,
) -> Vec<Value> {
    versions
        .iter()
        .map(|m| {
            let stats = stats.get(&m.version);
            let count = |f: fn(&VersionStats) -> u64| stats.map_or(0, |s| f(s));
            json!({
                "version": m.version,
                "name": m.name,
                "size": m.size,
                "uploaded_at": m.uploaded_at,
                "active": m.version == active,
                "candidate": Some(m.version.as_str()) == candidate,
                "quarantined": bindings.is_quarantined(&m.version),
                "calls": count(|s| s.calls.calls()),
                "errors": count(|s| s.calls.errors()),
                "traps": count(|s| s.calls.traps()),
                "memory_limits": count(|s| s.calls.memory_limits()),
                "deadlines": count(|s| s.calls.deadlines()),
                "quarantines": count(|s| s.quarantines.load(Ordering::Relaxed)),
            })
        })
        .collect()
}

fn deployment_report(d: &Arc<Deployment>) -> Value {
    json!({
        "version": d.version(),
        "name": d.name,
        "label": d.label,
        "config": config_json(d.config()),
        "traffic": d.traffic.report(),
    })
}

/// A binding's config as JSON (it was validated as JSON when it was bound).
fn config_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

fn candidate_report(c: &Candidate) -> Value {
    let mut report = deployment_report(&c.deployment);
    if let Some(obj) = report.as_object_mut() {
        match c.mode {
            CandidateMode::Shadow => {
                obj.insert("mode".into(), "shadow".into());
                obj.insert("shadow".into(), c.shadow.report());
            }
            CandidateMode::Canary(share) => {
                obj.insert("mode".into(), "canary".into());
                obj.insert("share".into(), share.into());
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: char, uploaded_at: u64) -> VersionMeta {
        VersionMeta {
            version: v.to_string().repeat(64),
            name: format!("p{v}"),
            size: 10,
            uploaded_at,
            config: None,
        }
    }

    #[test]
    fn versions_show_their_role_quarantine_and_counters() {
        let (a, b, c) = (meta('a', 1), meta('b', 2), meta('c', 3));
        let mut bindings = TenantBindings::default();
        bindings.quarantine(&c.version);
        let called = Arc::new(VersionStats::default());
        for _ in 0..5 {
            called.calls.record(&Ok(()));
        }
        for _ in 0..2 {
            called
                .calls
                .record::<()>(&Err(crate::policy::PolicyError::Trap("t".into())));
        }
        let stats = HashMap::from([(c.version.clone(), called)]);

        let reports = version_reports(
            &[a.clone(), b.clone(), c.clone()],
            &bindings,
            &stats,
            &a.version,
            Some(&b.version),
        );
        let role = |r: &Value| {
            (
                r["active"].as_bool().unwrap(),
                r["candidate"].as_bool().unwrap(),
                r["quarantined"].as_bool().unwrap(),
            )
        };
        assert_eq!(role(&reports[0]), (true, false, false));
        assert_eq!(role(&reports[1]), (false, true, false));
        assert_eq!(role(&reports[2]), (false, false, true));
        assert_eq!(reports[0]["calls"], 0, "never called: zeros");
        assert_eq!(
            (
                &reports[2]["calls"],
                &reports[2]["traps"],
                &reports[2]["deadlines"]
            ),
            (&json!(7), &json!(2), &json!(0))
        );
        assert_eq!(reports[1]["name"], "pb");
        assert_eq!(reports[1]["uploaded_at"], 2);
    }
}
