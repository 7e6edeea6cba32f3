//! A tenant's policy counters as saved beside its bindings: each version's calls by
//! outcome and its quarantines, the traffic of the active and candidate bindings, and
//! the shadow's comparison. Saved with the state snapshots (periodically and at exit)
//! and added back at start-up, so a restart does not zero what the admin API reports.
//!
//! Traffic and shadow counters belong to one binding (a version with one config):
//! they are restored only onto the same binding, as a new activation starts them
//! afresh.

use super::{BindingSpec, Deployment, ShadowStats, TrafficStats, VersionStats};
use crate::policy::CallCounters;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything saved for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedStats {
    /// Per version id.
    #[serde(default)]
    pub versions: BTreeMap<String, SavedVersion>,
    /// The active and candidate bindings' traffic.
    #[serde(default)]
    pub traffic: Vec<SavedTraffic>,
    /// The shadow candidate's comparison.
    #[serde(default)]
    pub shadow: Option<SavedShadow>,
}

/// One version's call counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedVersion {
    /// Route calls.
    pub calls: u64,
    /// Failed calls by kind (`crate::policy::FAILURE_KINDS`).
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
    /// Times quarantined.
    #[serde(default)]
    pub quarantines: u64,
}

/// One binding's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedTraffic {
    /// Version id.
    pub version: String,
    /// Config JSON text.
    pub config: String,
    /// [`TrafficStats`] fields, in their order.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// Latency sum, µs.
    pub latency_us: u64,
    /// Cost sum, micro-dollars.
    pub cost_micro_usd: u64,
}

/// A shadow's comparison with the active binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedShadow {
    /// The shadow's version id.
    pub version: String,
    /// Its config JSON text.
    pub config: String,
    /// [`ShadowStats`] fields.
    pub decisions: u64,
    /// Agreements.
    pub agreements: u64,
    /// Failed shadow calls.
    pub failures: u64,
    /// Served cost, micro-dollars.
    pub active_cost_micro_usd: u64,
    /// Cost on the shadow's choice, micro-dollars.
    pub shadow_cost_micro_usd: u64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

impl SavedStats {
    /// The counters as they stand.
    pub fn capture(
        stats: &HashMap<String, Arc<VersionStats>>,
        active: &Deployment,
        candidate: Option<(&Deployment, Option<&ShadowStats>)>,
    ) -> Self {
        let versions = stats
            .iter()
            .map(|(version, s)| {
                let failures = s
                    .calls
                    .failures()
                    .filter(|(_, n)| *n > 0)
                    .map(|(kind, n)| (kind.to_owned(), n))
                    .collect();
                let saved = SavedVersion {
                    calls: s.calls.calls(),
                    failures,
                    quarantines: get(&s.quarantines),
                };
                (version.clone(), saved)
            })
            .collect();
        let traffic = std::iter::once(active)
            .chain(candidate.map(|(d, _)| d))
            .map(|d| SavedTraffic {
                version: d.version().to_owned(),
                config: d.config().to_owned(),
                requests: get(&d.traffic.requests),
                errors: get(&d.traffic.errors),
                latency_us: get(&d.traffic.latency_us),
                cost_micro_usd: get(&d.traffic.cost_micro_usd),
            })
            .collect();
        let shadow = candidate.and_then(|(d, shadow)| {
            let s = shadow?;
            Some(SavedShadow {
                version: d.version().to_owned(),
                config: d.config().to_owned(),
                decisions: get(&s.decisions),
                agreements: get(&s.agreements),
                failures: get(&s.failures),
                active_cost_micro_usd: get(&s.active_cost_micro_usd),
                shadow_cost_micro_usd: get(&s.shadow_cost_micro_usd),
            })
        });
        SavedStats {
            versions,
            traffic,
            shadow,
        }
    }

    /// Fresh version counters holding what was saved.
    pub fn version_stats(&self) -> HashMap<String, Arc<VersionStats>> {
        self.versions
            .iter()
            .map(|(version, saved)| {
                let calls = CallCounters::default();
                calls.restore(saved.calls, |kind| {
                    saved.failures.get(kind).copied().unwrap_or(0)
                });
                let stats = VersionStats {
                    calls: Arc::new(calls),
                    quarantines: AtomicU64::new(saved.quarantines),
                };
                (version.clone(), Arc::new(stats))
            })
            .collect()
    }

    /// Adds the saved traffic of `binding`, if any, to `traffic`.
    pub fn restore_traffic(&self, binding: &BindingSpec, traffic: &TrafficStats) {
        let saved = self
            .traffic
            .iter()
            .find(|t| t.version == binding.version && t.config == binding.config);
        if let Some(t) = saved {
            add(&traffic.requests, t.requests);
            add(&traffic.errors, t.errors);
            add(&traffic.latency_us, t.latency_us);
            add(&traffic.cost_micro_usd, t.cost_micro_usd);
        }
    }

    /// The saved comparison of a shadow on `binding`, if any.
    pub fn shadow_stats(&self, binding: &BindingSpec) -> ShadowStats {
        let stats = ShadowStats::default();
        let saved = self
            .shadow
            .as_ref()
            .filter(|s| s.version == binding.version && s.config == binding.config);
        if let Some(s) = saved {
            add(&stats.decisions, s.decisions);
            add(&stats.agreements, s.agreements);
            add(&stats.failures, s.failures);
            add(&stats.active_cost_micro_usd, s.active_cost_micro_usd);
            add(&stats.shadow_cost_micro_usd, s.shadow_cost_micro_usd);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyError;

    #[test]
    fn version_counters_come_back_as_saved() {
        let stats = VersionStats::default();
        stats.calls.record(&Ok(()));
        stats
            .calls
            .record::<()>(&Err(PolicyError::Trap("t".into())));
        stats.calls.record::<()>(&Err(PolicyError::MemoryLimit(1)));
        add(&stats.quarantines, 2);
        let saved = SavedStats {
            versions: BTreeMap::from([(
                "v".to_owned(),
                SavedVersion {
                    calls: stats.calls.calls(),
                    failures: stats
                        .calls
                        .failures()
                        .map(|(k, n)| (k.to_owned(), n))
                        .collect(),
                    quarantines: 2,
                },
            )]),
            ..SavedStats::default()
        };
        let text = serde_json::to_string(&saved).unwrap();
        let back: SavedStats = serde_json::from_str(&text).unwrap();
        let restored = &back.version_stats()["v"];
        assert_eq!(restored.calls.calls(), 3);
        assert_eq!(restored.calls.traps(), 1);
        assert_eq!(restored.calls.memory_limits(), 1);
        assert_eq!(restored.calls.errors(), 2);
        assert_eq!(get(&restored.quarantines), 2);
    }

    #[test]
    fn traffic_and_shadow_come_back_only_onto_the_same_binding() {
        let binding = BindingSpec {
            version: "v".into(),
            name: "p".into(),
            config: "{}".into(),
        };
        let saved = SavedStats {
            traffic: vec![SavedTraffic {
                version: "v".into(),
                config: "{}".into(),
                requests: 5,
                errors: 1,
                latency_us: 10,
                cost_micro_usd: 7,
            }],
            shadow: Some(SavedShadow {
                version: "v".into(),
                config: "{}".into(),
                decisions: 4,
                agreements: 3,
                failures: 0,
                active_cost_micro_usd: 1,
                shadow_cost_micro_usd: 2,
            }),
            ..SavedStats::default()
        };
        let traffic = TrafficStats::default();
        saved.restore_traffic(&binding, &traffic);
        assert_eq!((get(&traffic.requests), get(&traffic.errors)), (5, 1));
        assert_eq!(get(&saved.shadow_stats(&binding).agreements), 3);

        let other = BindingSpec {
            config: r#"{"x":1}"#.into(),
            ..binding
        };
        let fresh = TrafficStats::default();
        saved.restore_traffic(&other, &fresh);
        assert_eq!(get(&fresh.requests), 0);
        assert_eq!(get(&saved.shadow_stats(&other).decisions), 0);
    }
}
