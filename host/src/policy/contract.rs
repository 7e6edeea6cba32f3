//! Which contract a component was built for, checked before and after compiling.

use super::error::LoadError;
use wasmtime::wasmparser::{Parser, Payload};

/// The `signalbox:policy` contract version this host speaks.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The interface a policy must export.
pub const ROUTER_EXPORT: &str = "signalbox:policy/router@0.1.0";

/// The custom section in which the SDK records the contract version.
pub const VERSION_SECTION: &str = "signalbox:contract-version";

/// The custom section in which the SDK records which optional hooks to call: one
/// byte, 1 when the policy wants `on-outcome` after every request, 0 when it does not.
pub const HOOKS_SECTION: &str = "signalbox:hooks";

const ROUTER_PREFIX: &str = "signalbox:policy/router@";

/// What a component's custom sections say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The contract version it was built for, if it says.
    pub built_for: Option<String>,
    /// Whether it wants `on-outcome` calls. Components without the hooks section
    /// (built without the SDK, or by an older one) get them.
    pub observes_outcomes: bool,
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
    let mut observes_outcomes = true;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::CustomSection(section)) if section.name() == VERSION_SECTION => {
                let text = String::from_utf8_lossy(section.data());
                built_for = Some(text.trim_matches('\0').trim().to_owned());
            }
            Ok(Payload::CustomSection(section)) if section.name() == HOOKS_SECTION => {
                observes_outcomes = section.data().first() != Some(&0);
            }
            Ok(_) => {}
            Err(e) => return Err(LoadError::Invalid(e.to_string())),
        }
    }
    if let Some(v) = &built_for
        && v != CONTRACT_VERSION
    {
        return Err(LoadError::ContractMismatch {
            built_for: v.clone(),
            host_speaks: CONTRACT_VERSION,
        });
    }
    Ok(Stamp {
        built_for,
        observes_outcomes,
    })
}

/// Checks a compiled component's exports: it must export the router at our version.
pub(crate) fn check_exports<'a>(exports: impl Iterator<Item = &'a str>) -> Result<(), LoadError> {
    let exports: Vec<&str> = exports.collect();
    if exports.contains(&ROUTER_EXPORT) {
        return Ok(());
    }
    if let Some(other) = exports.iter().find_map(|e| e.strip_prefix(ROUTER_PREFIX)) {
        return Err(LoadError::ContractMismatch {
            built_for: other.to_owned(),
            host_speaks: CONTRACT_VERSION,
        });
    }
    Err(LoadError::NotAPolicy {
        exports: if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(check_exports([ROUTER_EXPORT].into_iter()).is_ok());
        let err = check_exports(["signalbox:policy/router@0.2.0"].into_iter()).unwrap_err();
        assert!(
            err.to_string().contains("built for signalbox:policy@0.2.0"),
            "{err}"
        );
        let err = check_exports(["greet"].into_iter()).unwrap_err();
        assert!(matches!(err, LoadError::NotAPolicy { .. }), "{err}");
    }
}
