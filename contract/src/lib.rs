//! The rules of the `signalbox:policy` contract that both sides must apply the same
//! way: the gateway (host) and the policy SDK (guest) depend on this crate, so they
//! cannot drift apart.
//!
//! What lives here is what the WIT file can only state in words: which contract
//! versions exist, the size limits, how text is truncated, the token estimate, the
//! frozen hash behind sticky splits, and what makes a decision valid.
//!
//! # How the contract grows
//!
//! The WIT package's version is the contract version. A component records the version
//! it was built for (the SDK writes it into the `signalbox:contract-version` custom
//! section) and exports `signalbox:policy/router@<version>`.
//!
//! - A new contract version is published as a new WIT package version; the previous
//!   one is frozen under `wit/archive/<version>/` and never edited again.
//! - The host keeps the bindings of every version listed in [`SUPPORTED_VERSIONS`] and
//!   runs components built for them unchanged, converting its own types to each
//!   version's records. A version is dropped only in a major release of the gateway,
//!   announced one minor release ahead.
//! - A component built for a version the host does not know is refused with
//!   "built for X, host speaks Y".

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod counters;
mod decision;
mod hash;
mod text;
mod tokens;

pub use counters::{NotNumeric, add_counters, encode_counters, parse_counters};
pub use decision::{DecisionError, validate_rejection_status, validate_targets};
pub use hash::{stable_hash, unit_interval};
pub use text::truncate_at_char;
pub use tokens::estimate_tokens;

/// The newest contract version: what the SDK builds and the WIT file in `wit/` states.
pub const CONTRACT_VERSION: &str = "0.4.0";

/// Every contract version a gateway of this release runs, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", CONTRACT_VERSION];

/// The custom section in which a component records its contract version.
pub const VERSION_SECTION: &str = "signalbox:contract-version";

/// The custom section in which a component says which optional hooks it wants: one
/// byte of [`Hooks`] bits. A component without it gets every hook.
pub const HOOKS_SECTION: &str = "signalbox:hooks";

/// The optional hooks a component wants called: the byte of its [`HOOKS_SECTION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks {
    /// `on-outcome` after every request (bit 0).
    pub outcomes: bool,
    /// `review` of every answer (bit 1; contract 0.4.0 on).
    pub reviews: bool,
}

impl Hooks {
    /// What a component without the section gets: every hook.
    pub const ALL: Hooks = Hooks {
        outcomes: true,
        reviews: true,
    };

    /// The section's byte.
    pub const fn to_byte(self) -> u8 {
        (self.outcomes as u8) | ((self.reviews as u8) << 1)
    }

    /// Reads the section's content (an SDK before 0.4.0 wrote 0 or 1: no reviews).
    pub fn from_section(data: &[u8]) -> Hooks {
        match data.first() {
            None => Hooks::ALL,
            Some(byte) => Hooks {
                outcomes: byte & 1 != 0,
                reviews: byte & 2 != 0,
            },
        }
    }
}

/// The prefix of the router interface a policy exports; the version follows the `@`.
pub const ROUTER_PREFIX: &str = "signalbox:policy/router@";

/// Longest decision reason kept, in bytes; longer ones are cut on a character boundary.
pub const MAX_REASON: usize = 256;

/// Longest rejection message kept, in bytes; longer ones are cut on a character boundary.
pub const MAX_MESSAGE: usize = 1024;

/// Longest verifier prompt (`review`'s `verify`) the host sends, in bytes; a longer one
/// counts as `accept`.
pub const MAX_VERIFY_PROMPT: usize = 32 * 1024;

/// Longest request id handed to a policy, in bytes.
pub const MAX_REQUEST_ID: usize = 64;

/// The host's default limit on a state-store key, in bytes.
pub const MAX_STATE_KEY: usize = 256;

/// The host's default limit on a state-store value, in bytes.
pub const MAX_STATE_VALUE: usize = 64 * 1024;

/// Whether this release runs components built for `version`.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The supported versions as one phrase, for error messages: `0.4.0 (and 0.1.0, 0.2.0, 0.3.0)`.
pub fn host_speaks() -> String {
    let older: Vec<&str> = SUPPORTED_VERSIONS
        .iter()
        .copied()
        .filter(|v| *v != CONTRACT_VERSION)
        .collect();
    if older.is_empty() {
        CONTRACT_VERSION.to_owned()
    } else {
        format!("{CONTRACT_VERSION} (and {})", older.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_is_supported_and_last() {
        assert!(is_supported(CONTRACT_VERSION));
        assert_eq!(SUPPORTED_VERSIONS.last(), Some(&CONTRACT_VERSION));
        assert!(!is_supported("0.5.0"));
        assert_eq!(host_speaks(), "0.4.0 (and 0.1.0, 0.2.0, 0.3.0)");
    }

    #[test]
    fn the_wit_file_states_the_newest_version() {
        let wit = include_str!("../../wit/policy.wit");
        assert!(
            wit.contains(&format!("package signalbox:policy@{CONTRACT_VERSION};")),
            "wit/policy.wit must declare the package at {CONTRACT_VERSION}"
        );
    }

    #[test]
    fn hooks_round_trip_and_older_sdks_review_nothing() {
        for outcomes in [false, true] {
            for reviews in [false, true] {
                let hooks = Hooks { outcomes, reviews };
                assert_eq!(Hooks::from_section(&[hooks.to_byte()]), hooks);
            }
        }
        assert_eq!(Hooks::from_section(&[]), Hooks::ALL);
        // What an SDK before 0.4.0 wrote.
        assert!(!Hooks::from_section(&[1]).reviews);
        assert!(!Hooks::from_section(&[0]).outcomes);
    }

    #[test]
    fn every_older_version_is_archived() {
        for version in SUPPORTED_VERSIONS
            .iter()
            .filter(|v| **v != CONTRACT_VERSION)
        {
            let path = format!(
                "{}/../wit/archive/{version}/policy.wit",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                text.contains(&format!("package signalbox:policy@{version};")),
                "{path} must hold the frozen {version} contract"
            );
        }
    }
}
