//! Which contract a component was built for, checked before and after compiling, and
//! the one place the host meets the generated bindings: every supported contract
//! version has a module here that converts the host's own types to its records.
//! Nothing outside this module sees a generated type.

mod bindings;
mod v0_1;
mod v0_2;
mod v0_3;
mod v0_4;

use super::error::{LoadError, PolicyError};
use super::request::{MessagesView, RouteRequest};
use super::review::{AnswerBodyView, AnswerView, Verdict};
use super::store_data::StoreData;
use super::target::{TargetInfo, TargetSignals};
use super::{Feedback, Outcome, RouteDecision};
use signalbox_contract::{HOOKS_SECTION, ROUTER_PREFIX, VERSION_SECTION};
use wasmtime::component::{Component, HasSelf, Linker, Resource};
use wasmtime::wasmparser::{Parser, Payload};
use wasmtime::{AsContextMut, Store};

/// A contract version this host runs, oldest first (so they compare by age).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 0.1.0, the first published contract.
    V0_1,
    /// 0.2.0: how a request ended.
    V0_2,
    /// 0.3.0: atomic counters in the state store.
    V0_3,
    /// 0.4.0, the newest: the review of answers.
    V0_4,
}

impl Version {
    fn parse(version: &str) -> Option<Version> {
        match version {
            "0.1.0" => Some(Version::V0_1),
            "0.2.0" => Some(Version::V0_2),
            "0.3.0" => Some(Version::V0_3),
            "0.4.0" => Some(Version::V0_4),
            _ => None,
        }
    }

    /// The version as written in the WIT package, e.g. `0.3.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
            Version::V0_3 => "0.3.0",
            Version::V0_4 => "0.4.0",
        }
    }
}

fn mismatch(built_for: &str) -> LoadError {
    LoadError::ContractMismatch {
        built_for: printable(built_for),
        host_speaks: signalbox_contract::host_speaks(),
    }
}

/// Longest piece of an uploaded component quoted in a load error, in characters.
const MAX_QUOTED: usize = 64;

/// Text from an uploaded component as a load error may quote it: the error is
/// answered to the uploader and logged, so it is kept short and its control
/// characters escaped. (Found by the admin upload fuzz target: a version stamp of
/// any bytes was quoted whole.)
fn printable(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(MAX_QUOTED)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX_QUOTED).is_some() {
        shown.push('…');
    }
    shown
}

/// Links the host's imports of every supported version.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    v0_1::Policy::add_to_linker::<_, HasSelf<StoreData>>(linker, |data| data)?;
    v0_2::Policy::add_to_linker::<_, HasSelf<StoreData>>(linker, |data| data)?;
    v0_3::Policy::add_to_linker::<_, HasSelf<StoreData>>(linker, |data| data)?;
    v0_4::Policy::add_to_linker::<_, HasSelf<StoreData>>(linker, |data| data)?;
    Ok(())
}

/// A component checked against its version's world, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(v0_1::PolicyPre<StoreData>),
    V0_2(v0_2::PolicyPre<StoreData>),
    V0_3(v0_3::PolicyPre<StoreData>),
    V0_4(v0_4::PolicyPre<StoreData>),
}

impl Pre {
    pub fn new(
        linker: &Linker<StoreData>,
        component: &Component,
        version: Version,
    ) -> wasmtime::Result<Pre> {
        let pre = linker.instantiate_pre(component)?;
        Ok(match version {
            Version::V0_1 => Pre::V0_1(v0_1::PolicyPre::new(pre)?),
            Version::V0_2 => Pre::V0_2(v0_2::PolicyPre::new(pre)?),
            Version::V0_3 => Pre::V0_3(v0_3::PolicyPre::new(pre)?),
            Version::V0_4 => Pre::V0_4(v0_4::PolicyPre::new(pre)?),
        })
    }

    pub fn instantiate(&self, store: &mut Store<StoreData>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::V0_1(pre) => Exports::V0_1(pre.instantiate(store)?, Default::default()),
            Pre::V0_2(pre) => Exports::V0_2(pre.instantiate(store)?, Default::default()),
            Pre::V0_3(pre) => Exports::V0_3(pre.instantiate(store)?, Default::default()),
            Pre::V0_4(pre) => Exports::V0_4(pre.instantiate(store)?, Default::default()),
        })
    }
}

/// The typed exports of one live instance, with its buffers for per-call records.
pub(crate) enum Exports {
    V0_1(v0_1::Policy, v0_1::Scratch),
    V0_2(v0_2::Policy, v0_2::Scratch),
    V0_3(v0_3::Policy, v0_3::Scratch),
    V0_4(v0_4::Policy, v0_4::Scratch),
}

/// What a failed call returns: the engine's error (a trap, the deadline) to classify.
type Call<T> = wasmtime::Result<T>;

impl Exports {
    pub fn activate(
        &self,
        store: impl AsContextMut<Data = StoreData>,
        config: &str,
        targets: &[TargetInfo],
    ) -> Call<Result<(), String>> {
        match self {
            Exports::V0_1(p, _) => {
                p.signalbox_policy_router()
                    .call_activate(store, config, &v0_1::targets(targets))
            }
            Exports::V0_2(p, _) => {
                p.signalbox_policy_router()
                    .call_activate(store, config, &v0_2::targets(targets))
            }
            Exports::V0_3(p, _) => {
                p.signalbox_policy_router()
                    .call_activate(store, config, &v0_3::targets(targets))
            }
            Exports::V0_4(p, _) => {
                p.signalbox_policy_router()
                    .call_activate(store, config, &v0_4::targets(targets))
            }
        }
    }

    /// Asks for a decision, checked against `target_count` by the contract's rules.
    pub fn route(
        &mut self,
        store: impl AsContextMut<Data = StoreData>,
        request: &RouteRequest,
        messages: Resource<MessagesView>,
        signals: &[TargetSignals],
        target_count: usize,
    ) -> Call<Result<RouteDecision, PolicyError>> {
        let invalid =
            |e: signalbox_contract::DecisionError| PolicyError::InvalidDecision(e.to_string());
        Ok(match self {
            Exports::V0_1(p, scratch) => {
                let (request, signals) = scratch.fill(request, signals);
                let answer = p
                    .signalbox_policy_router()
                    .call_route(store, request, messages, signals)?;
                v0_1::decision(answer, target_count).map_err(invalid)
            }
            Exports::V0_2(p, scratch) => {
                let (request, signals) = scratch.fill(request, signals);
                let answer = p
                    .signalbox_policy_router()
                    .call_route(store, request, messages, signals)?;
                v0_2::decision(answer, target_count).map_err(invalid)
            }
            Exports::V0_3(p, scratch) => {
                let (request, signals) = scratch.fill(request, signals);
                let answer = p
                    .signalbox_policy_router()
                    .call_route(store, request, messages, signals)?;
                v0_3::decision(answer, target_count).map_err(invalid)
            }
            Exports::V0_4(p, scratch) => {
                let (request, signals) = scratch.fill(request, signals);
                let answer = p
                    .signalbox_policy_router()
                    .call_route(store, request, messages, signals)?;
                v0_4::decision(answer, target_count).map_err(invalid)
            }
        })
    }

    /// Reports an outcome, in the form the component's version can express (a 0.1.0
    /// component hears nothing of a request no target was tried for).
    pub fn on_outcome(
        &self,
        store: impl AsContextMut<Data = StoreData>,
        outcome: &Outcome,
    ) -> Call<()> {
        match self {
            Exports::V0_1(p, _) => match v0_1::outcome(outcome) {
                Some(o) => p.signalbox_policy_router().call_on_outcome(store, &o),
                None => Ok(()),
            },
            Exports::V0_2(p, _) => p
                .signalbox_policy_router()
                .call_on_outcome(store, &v0_2::outcome(outcome)),
            Exports::V0_3(p, _) => p
                .signalbox_policy_router()
                .call_on_outcome(store, &v0_3::outcome(outcome)),
            Exports::V0_4(p, _) => p
                .signalbox_policy_router()
                .call_on_outcome(store, &v0_4::outcome(outcome)),
        }
    }

    pub fn on_feedback(
        &self,
        store: impl AsContextMut<Data = StoreData>,
        feedback: &Feedback,
    ) -> Call<()> {
        match self {
            Exports::V0_1(p, _) => p
                .signalbox_policy_router()
                .call_on_feedback(store, &v0_1::feedback(feedback)),
            Exports::V0_2(p, _) => p
                .signalbox_policy_router()
                .call_on_feedback(store, &v0_2::feedback(feedback)),
            Exports::V0_3(p, _) => p
                .signalbox_policy_router()
                .call_on_feedback(store, &v0_3::feedback(feedback)),
            Exports::V0_4(p, _) => p
                .signalbox_policy_router()
                .call_on_feedback(store, &v0_4::feedback(feedback)),
        }
    }

    /// Asks for a review of `answer`, checked against `target_count`; versions before
    /// 0.4.0 have no review, and accept.
    pub fn review(
        &self,
        store: impl AsContextMut<Data = StoreData>,
        answer: &AnswerView,
        body: Resource<AnswerBodyView>,
        target_count: usize,
    ) -> Call<Result<Verdict, PolicyError>> {
        match self {
            Exports::V0_1(..) | Exports::V0_2(..) | Exports::V0_3(..) => Ok(Ok(Verdict::Accept)),
            Exports::V0_4(p, _) => {
                let verdict =
                    p.signalbox_policy_router()
                        .call_review(store, &v0_4::answer(answer), body)?;
                Ok(v0_4::verdict(verdict)
                    .checked(target_count)
                    .map_err(PolicyError::InvalidDecision))
            }
        }
    }
}

/// What a component's custom sections say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The contract version it was built for, if it says.
    pub built_for: Option<String>,
    /// Which optional hooks it wants called. Components without the hooks section
    /// (built without the SDK, or by an older one) get them all.
    pub hooks: signalbox_contract::Hooks,
}

/// Checks the header and the SDK's stamps, without compiling.
pub(crate) fn inspect(bytes: &[u8]) -> Result<Stamp, LoadError> {
    let header = bytes.get(..8).ok_or(LoadError::NotWasm)?;
    if &header[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    let layer = u16::from_le_bytes([header[6], header[7]]);
    match (layer, version) {
        (0, 1) => return Err(LoadError::CoreModule),
        (1, _) => {}
        _ => return Err(LoadError::UnknownEncoding { version, layer }),
    }

    // The stamp sits in the policy's core module, nested inside the component;
    // `parse_all` walks nested modules too.
    let mut built_for = None;
    let mut hooks = signalbox_contract::Hooks::ALL;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::CustomSection(section)) if section.name() == VERSION_SECTION => {
                let text = String::from_utf8_lossy(section.data());
                built_for = Some(text.trim_matches('\0').trim().to_owned());
            }
            Ok(Payload::CustomSection(section)) if section.name() == HOOKS_SECTION => {
                hooks = signalbox_contract::Hooks::from_section(section.data());
            }
            Ok(_) => {}
            Err(e) => return Err(LoadError::invalid(e)),
        }
    }
    if let Some(v) = &built_for
        && !signalbox_contract::is_supported(v)
    {
        return Err(mismatch(v));
    }
    Ok(Stamp { built_for, hooks })
}

/// Checks a compiled component's exports: it must export the router at a version
/// this host runs, which is the version it is run as.
pub(crate) fn check_exports<'a>(
    exports: impl Iterator<Item = &'a str>,
) -> Result<Version, LoadError> {
    let exports: Vec<&str> = exports.collect();
    if let Some(found) = exports.iter().find_map(|e| e.strip_prefix(ROUTER_PREFIX)) {
        return Version::parse(found).ok_or_else(|| mismatch(found));
    }
    // A component may export any number of names: a few say what it is.
    const LISTED: usize = 8;
    let mut listed = exports
        .iter()
        .take(LISTED)
        .map(|e| printable(e))
        .collect::<Vec<_>>()
        .join(", ");
    if exports.is_empty() {
        listed = "nothing".to_owned();
    } else if exports.len() > LISTED {
        listed.push_str(&format!(" and {} more", exports.len() - LISTED));
    }
    Err(LoadError::NotAPolicy { exports: listed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_contract::CONTRACT_VERSION;

    #[test]
    fn headers_are_told_apart() {
        assert!(matches!(inspect(b"hello world"), Err(LoadError::NotWasm)));
        assert!(matches!(inspect(b"\0asm"), Err(LoadError::NotWasm)));
        assert!(matches!(
            inspect(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(matches!(
            inspect(b"\0asm\x0d\0\x07\0"),
            Err(LoadError::UnknownEncoding { layer: 7, .. })
        ));
    }

    #[test]
    fn exports_name_the_version_found() {
        let export = |v: &str| format!("{ROUTER_PREFIX}{v}");
        for version in signalbox_contract::SUPPORTED_VERSIONS {
            let found = check_exports([export(version).as_str()].into_iter()).unwrap();
            assert_eq!(found.as_str(), *version);
        }
        assert_eq!(
            check_exports([export(CONTRACT_VERSION).as_str()].into_iter()).unwrap(),
            Version::V0_4
        );
        let err = check_exports([export("0.5.0").as_str()].into_iter()).unwrap_err();
        assert!(
            err.to_string().contains(
                "built for signalbox:policy@0.5.0, host speaks signalbox:policy@0.4.0 (and 0.1.0, 0.2.0, 0.3.0)"
            ),
            "{err}"
        );
        let err = check_exports(["greet"].into_iter()).unwrap_err();
        assert!(matches!(err, LoadError::NotAPolicy { .. }), "{err}");
        let many: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let err = check_exports(many.iter().map(String::as_str)).unwrap_err();
        assert!(err.to_string().contains("f7 and 12 more"), "{err}");
    }

    #[test]
    fn stamps_are_quoted_short_and_printable() {
        let err = mismatch("\u{1c}$\u{7f}\n0.9");
        assert!(!err.to_string().chars().any(char::is_control), "{err}");
        let long = "9".repeat(10_000);
        assert!(mismatch(&long).to_string().len() < 300);
    }
}
