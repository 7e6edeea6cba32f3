//! A tenant's bindings as stored: the active version with its config, the history
//! that rollback walks back through, the candidate on trial and the quarantine list.
//! Plain data with the rules that change it; the store reads and writes it.

use super::CandidateMode;
use serde::{Deserialize, Serialize};

/// Metadata of one uploaded version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionMeta {
    /// sha256 of the component, hex.
    pub version: String,
    /// Name given at upload.
    pub name: String,
    /// Size in bytes.
    pub size: usize,
    /// Upload time, seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// The config JSON it was first uploaded with: what an activation that names no
    /// config uses when the version was never bound (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// A version with the config it runs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindingSpec {
    /// Version id.
    pub version: String,
    /// Policy name.
    pub name: String,
    /// Config JSON text.
    pub config: String,
}

/// A candidate on record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidateSpec {
    /// The version and config.
    pub binding: BindingSpec,
    /// `shadow` or `canary`.
    pub mode: String,
    /// Canary share in `[0, 1]` (0 for shadow).
    #[serde(default)]
    pub share: f64,
}

impl CandidateSpec {
    /// The record of `binding` on trial in `mode`.
    pub fn new(binding: BindingSpec, mode: CandidateMode) -> Self {
        let (mode, share) = match mode {
            CandidateMode::Shadow => ("shadow", 0.0),
            CandidateMode::Canary(share) => ("canary", share),
        };
        CandidateSpec {
            binding,
            mode: mode.to_owned(),
            share,
        }
    }

    /// How the candidate takes part in routing. Anything but `canary` is a shadow:
    /// a record the host cannot read never sends live traffic to a version on trial.
    pub fn mode(&self) -> CandidateMode {
        if self.mode == "canary" {
            CandidateMode::Canary(self.share)
        } else {
            CandidateMode::Shadow
        }
    }
}

/// A tenant's bindings as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TenantBindings {
    /// The active binding.
    pub active: Option<BindingSpec>,
    /// Earlier active bindings, most recent last (rollback pops).
    #[serde(default)]
    pub history: Vec<BindingSpec>,
    /// A version on trial.
    #[serde(default)]
    pub candidate: Option<CandidateSpec>,
    /// Versions quarantined automatically.
    #[serde(default)]
    pub quarantined: Vec<String>,
    /// The binding the config file named when it was last read: a changed config
    /// activates its policy at start-up, an unchanged one leaves the stored state.
    #[serde(default)]
    pub seed: Option<BindingSpec>,
}

/// Earlier bindings kept for rollback.
pub const HISTORY_LIMIT: usize = 20;

impl TenantBindings {
    /// Makes `spec` active, remembering the one it replaces (the oldest of more than
    /// [`HISTORY_LIMIT`] is forgotten).
    pub fn activate(&mut self, spec: BindingSpec) {
        if let Some(old) = self.active.replace(spec) {
            self.history.push(old);
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
    }

    /// Makes the most recent earlier binding active again; the one it replaces is
    /// not kept (rolling back twice goes two steps back). `None`, and nothing
    /// changed, without history.
    pub fn roll_back(&mut self) -> Option<&BindingSpec> {
        let previous = self.history.pop()?;
        self.active = Some(previous);
        self.active.as_ref()
    }

    /// Whether `version` is quarantined.
    pub fn is_quarantined(&self, version: &str) -> bool {
        self.quarantined.iter().any(|v| v == version)
    }

    /// Records `version` as quarantined (once).
    pub fn quarantine(&mut self, version: &str) {
        if !self.is_quarantined(version) {
            self.quarantined.push(version.to_owned());
        }
    }

    /// Lifts the quarantine of `version` (it was uploaded afresh).
    pub fn release(&mut self, version: &str) {
        self.quarantined.retain(|v| v != version);
    }

    /// Earlier bindings, most recent first, as the admin API lists them.
    pub fn history_newest_first(&self) -> impl Iterator<Item = &BindingSpec> {
        self.history.iter().rev()
    }

    /// The config `version` was last bound with: the active binding's, the
    /// candidate's, then the history's from the most recent.
    pub fn last_config(&self, version: &str) -> Option<&str> {
        self.active
            .iter()
            .chain(self.candidate.as_ref().map(|c| &c.binding))
            .chain(self.history.iter().rev())
            .find(|s| s.version == version)
            .map(|s| s.config.as_str())
    }
}

/// The one version id among `versions` that starts with `prefix`: `Ok(None)` when
/// none does, `Err` with every match when several do. Ids are lower-case hex; the
/// prefix is compared case-insensitively, as people copy it from headers and logs.
pub fn resolve_prefix<'a>(
    prefix: &str,
    versions: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, Vec<&'a str>> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.is_empty() {
        return Ok(None);
    }
    let matches: Vec<&str> = versions
        .into_iter()
        .filter(|v| v.starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(matches),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec(v: char) -> BindingSpec {
        BindingSpec {
            version: v.to_string().repeat(64),
            name: "p".into(),
            config: "{}".into(),
        }
    }

    #[test]
    fn history_keeps_the_replaced_bindings_in_order() {
        let mut b = TenantBindings::default();
        for c in ['a', 'b', 'c'] {
            b.activate(spec(c));
        }
        assert_eq!(b.active, Some(spec('c')));
        assert_eq!(b.history, vec![spec('a'), spec('b')]);
        let newest_first: Vec<&str> = b
            .history_newest_first()
            .map(|s| s.version.as_str())
            .collect();
        assert_eq!(newest_first, vec![spec('b').version, spec('a').version]);
    }

    #[test]
    fn history_forgets_the_oldest_beyond_its_limit() {
        let mut b = TenantBindings::default();
        let versions: Vec<BindingSpec> = (0..HISTORY_LIMIT + 3)
            .map(|i| BindingSpec {
                version: format!("{i:064x}"),
                name: "p".into(),
                config: "{}".into(),
            })
            .collect();
        for v in &versions {
            b.activate(v.clone());
        }
        assert_eq!(b.history.len(), HISTORY_LIMIT);
        // The active one and the two oldest are not in the history.
        assert_eq!(b.history.first(), Some(&versions[2]));
        assert_eq!(b.history.last(), Some(&versions[HISTORY_LIMIT + 1]));
    }

    #[test]
    fn rolling_back_walks_the_history_and_stops_at_its_start() {
        let mut b = TenantBindings::default();
        for c in ['a', 'b', 'c'] {
            b.activate(spec(c));
        }
        assert_eq!(b.roll_back(), Some(&spec('b')));
        assert_eq!(b.roll_back(), Some(&spec('a')));
        assert_eq!(b.history, vec![]);
        let before = b.clone();
        assert_eq!(b.roll_back(), None);
        assert_eq!(b, before, "a refused rollback changes nothing");
    }

    #[test]
    fn a_version_keeps_the_config_it_was_last_bound_with() {
        let mut b = TenantBindings::default();
        let with = |c: char, config: &str| BindingSpec {
            config: config.into(),
            ..spec(c)
        };
        b.activate(with('a', r#"{"n":1}"#));
        b.activate(with('b', "{}"));
        b.activate(with('a', r#"{"n":2}"#));
        b.candidate = Some(CandidateSpec::new(
            with('c', r#"{"n":3}"#),
            CandidateMode::Shadow,
        ));
        assert_eq!(b.last_config(&spec('a').version), Some(r#"{"n":2}"#));
        assert_eq!(b.last_config(&spec('b').version), Some("{}"));
        assert_eq!(b.last_config(&spec('c').version), Some(r#"{"n":3}"#));
        assert_eq!(b.last_config(&spec('d').version), None);
    }

    #[test]
    fn a_unique_prefix_names_its_version() {
        let versions = ["ab12", "ab34", "cd56"];
        let resolve = |p: &str| resolve_prefix(p, versions);
        assert_eq!(resolve("c"), Ok(Some("cd56")));
        assert_eq!(resolve("AB3"), Ok(Some("ab34")));
        assert_eq!(resolve("ab12"), Ok(Some("ab12")));
        assert_eq!(resolve("ab"), Err(vec!["ab12", "ab34"]));
        assert_eq!(resolve("ef"), Ok(None));
        assert_eq!(resolve(""), Ok(None));
        assert_eq!(resolve("ab123"), Ok(None));
    }

    #[test]
    fn quarantine_is_recorded_once_and_lifted_by_a_new_upload() {
        let mut b = TenantBindings::default();
        let v = spec('a').version;
        b.quarantine(&v);
        b.quarantine(&v);
        assert_eq!(b.quarantined, vec![v.clone()]);
        assert!(b.is_quarantined(&v));
        b.release(&v);
        assert!(!b.is_quarantined(&v));
    }

    #[test]
    fn candidate_records_keep_their_mode() {
        let shadow = CandidateSpec::new(spec('a'), CandidateMode::Shadow);
        assert_eq!((shadow.mode.as_str(), shadow.share), ("shadow", 0.0));
        assert_eq!(shadow.mode(), CandidateMode::Shadow);
        let canary = CandidateSpec::new(spec('a'), CandidateMode::Canary(0.25));
        assert_eq!(canary.mode(), CandidateMode::Canary(0.25));
        let odd = CandidateSpec {
            mode: "blue-green".into(),
            ..canary
        };
        assert_eq!(odd.mode(), CandidateMode::Shadow);
    }

    #[test]
    fn records_from_before_optional_fields_still_read() {
        let old: TenantBindings =
            serde_json::from_str(r#"{"active": {"version": "v", "name": "p", "config": "{}"}}"#)
                .unwrap();
        assert_eq!(old.active.map(|a| a.version), Some("v".to_owned()));
        assert!(old.history.is_empty() && old.quarantined.is_empty() && old.seed.is_none());
        let meta: VersionMeta =
            serde_json::from_str(r#"{"version": "v", "name": "p", "size": 1, "uploaded_at": 2}"#)
                .unwrap();
        assert_eq!(meta.config, None);
    }
}
