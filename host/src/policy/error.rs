//! What can go wrong loading or running a policy.

use std::path::PathBuf;
use std::time::Duration;

/// Why a policy component could not be loaded. Each case has its own message, so an
/// operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "not a WebAssembly file (no `\\0asm` header); a policy is a component built with `cargo build --target wasm32-wasip2`"
    )]
    NotWasm,
    /// A core module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component; build the policy for `wasm32-wasip2` with the Signalbox SDK"
    )]
    CoreModule,
    /// WebAssembly of a layer or version this host does not understand.
    #[error("unsupported WebAssembly encoding (version {version:#x}, layer {layer})")]
    UnknownEncoding {
        /// The header's version field.
        version: u16,
        /// The header's layer field.
        layer: u16,
    },
    /// Built against another version of the contract.
    #[error(
        "policy built for signalbox:policy@{built_for}, host speaks signalbox:policy@{host_speaks}; rebuild it with a matching signalbox-sdk"
    )]
    ContractMismatch {
        /// The version the component was built for.
        built_for: String,
        /// The versions this host runs, newest first.
        host_speaks: String,
    },
    /// A component, but not a Signalbox policy.
    #[error(
        "component does not export signalbox:policy/router (it exports: {exports}); is it a Signalbox policy?"
    )]
    NotAPolicy {
        /// What it exports instead, comma-separated.
        exports: String,
    },
    /// The component failed validation or compilation.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component imports something the host cannot link.
    #[error("cannot link the component: {0}")]
    Link(String),
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Longest message from the engine kept in a [`LoadError`], in characters.
const MAX_ENGINE_MESSAGE: usize = 512;

impl LoadError {
    /// The engine refused the component ([`LoadError::Invalid`]).
    pub(crate) fn invalid(error: impl std::fmt::Display) -> LoadError {
        LoadError::Invalid(one_line(&format!("{error:#}")))
    }

    /// The component cannot be linked ([`LoadError::Link`]).
    pub(crate) fn link(error: impl std::fmt::Display) -> LoadError {
        LoadError::Link(one_line(&format!("{error:#}")))
    }
}

/// An engine's message as a load error keeps it: it is answered to the uploader and
/// logged, so on one line and of bounded length. (Found by the admin upload fuzz
/// target: the parser's messages can span lines and quote what it read.)
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_ENGINE_MESSAGE));
    for (i, word) in message.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in word.chars() {
            if c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
    }
    if out.chars().count() > MAX_ENGINE_MESSAGE {
        out = out.chars().take(MAX_ENGINE_MESSAGE).collect();
        out.push('…');
    }
    out
}

/// Why a call into a policy failed. The gateway answers every one of these with the
/// tenant's safe route; none of them is the client's fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The policy trapped (a panic, an `unreachable`, an out-of-bounds access…).
    #[error("policy trapped: {0}")]
    Trap(String),
    /// The policy ran past its deadline and was stopped.
    #[error("policy exceeded its {0:?} deadline")]
    Deadline(Duration),
    /// The policy tried to grow its memory past the cap.
    #[error("policy exceeded its memory cap of {0} bytes")]
    MemoryLimit(usize),
    /// The answer broke the contract (empty, unknown target, repeated target, bad
    /// status).
    #[error("policy returned an invalid decision: {0}")]
    InvalidDecision(String),
    /// The policy rejected the configuration it was activated with.
    #[error("policy rejected its config: {0}")]
    BadConfig(String),
    /// The host could not create an instance (e.g. the instance pool is exhausted).
    #[error("cannot instantiate the policy: {0}")]
    Instantiate(String),
}

impl PolicyError {
    /// A short, stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Trap(_) => "trap",
            PolicyError::Deadline(_) => "deadline",
            PolicyError::MemoryLimit(_) => "memory_limit",
            PolicyError::InvalidDecision(_) => "invalid_decision",
            PolicyError::BadConfig(_) => "bad_config",
            PolicyError::Instantiate(_) => "instantiate",
        }
    }
}

/// Why the policy engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The wasmtime configuration was refused.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Config(String),
    /// The compiled-artifact cache directory is unusable.
    #[error("cannot use the policy cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages_are_one_bounded_line() {
        let e = LoadError::invalid("bad magic - expected=[\n    0x0,\n    0x61,\n] \u{1b}[31m");
        assert_eq!(
            e.to_string(),
            "invalid component: bad magic - expected=[ 0x0, 0x61, ] \\u{1b}[31m"
        );
        let long = LoadError::link("x".repeat(5000)).to_string();
        assert!(long.chars().count() < MAX_ENGINE_MESSAGE + 40, "{long}");
    }
}
