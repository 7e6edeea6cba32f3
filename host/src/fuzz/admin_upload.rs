//! The admin API's policy upload: its query string (`name`, `config`) and the bytes of
//! the component (`PolicyEngine::load`: header, the SDK's stamps, then compilation).
//!
//! Properties: the query reads back what was sent, and a name is never empty; a load
//! never panics, tells apart what is not WebAssembly and what is a core module, names
//! a loaded version by its hash, and answers with a short, printable error (it is
//! shown to the uploader and logged).

use super::CI_TIME;
use crate::admin::routes::upload_params;
use crate::embedded::DEFAULT_POLICY;
use crate::policy::contract::inspect;
use crate::policy::{EngineConfig, LoadError, PolicyEngine, sha256_hex};
use arbitrary::Unstructured;
use signalbox_contract::{HOOKS_SECTION, VERSION_SECTION};
use std::panic::AssertUnwindSafe;

/// Longest error a load may answer with.
const MAX_ERROR: usize = 1024;

#[test]
fn admin_upload() {
    // A panic inside a load would fail the test at once, so no broken engine state
    // can be observed by a later input.
    let engine = AssertUnwindSafe(PolicyEngine::new(EngineConfig::default()).unwrap());
    bolero::check!(name = "admin_upload")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_query(&String::from_utf8_lossy(bytes));
            check_load(&engine, bytes);
            let mut u = Unstructured::new(bytes);
            check_query_round_trip(&mut u);
            let component = shaped(&mut u);
            check_stamps(&component);
            // A component that survives its damage is compiled (tenths of a second):
            // a sample of them.
            if bytes.first().is_some_and(|b| b % 16 == 0) {
                check_load(&engine, &component);
            }
        });
}

fn check_query(query: &str) {
    let (name, _config) = upload_params(query);
    assert!(!name.is_empty());
}

fn check_query_round_trip(u: &mut Unstructured<'_>) {
    let name: String = u.arbitrary().unwrap_or_default();
    let config: String = u.arbitrary().unwrap_or_default();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("name", &name)
        .append_pair("config", &config)
        .finish();
    let (read_name, read_config) = upload_params(&query);
    let expected = if name.is_empty() { "policy" } else { &name };
    assert_eq!(
        (read_name.as_str(), read_config.as_str()),
        (expected, config.as_str())
    );
}

fn check_load(engine: &PolicyEngine, bytes: &[u8]) {
    match engine.load(bytes) {
        Ok(policy) => assert_eq!(policy.version(), sha256_hex(bytes)),
        Err(e) => {
            if !bytes.starts_with(b"\0asm") {
                assert!(matches!(e, LoadError::NotWasm), "{e}");
            }
            if bytes.get(..8) == Some(b"\0asm\x01\0\0\0") {
                assert!(matches!(e, LoadError::CoreModule), "{e}");
            }
            let shown = e.to_string();
            assert!(
                shown.len() <= MAX_ERROR,
                "{} bytes: {shown:.200}",
                shown.len()
            );
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
    }
}

/// The checks before compiling (header, the SDK's stamps) never panic, and agree with
/// a load on what they refuse.
fn check_stamps(bytes: &[u8]) {
    if let Err(e) = inspect(bytes) {
        let shown = e.to_string();
        assert!(
            shown.len() <= MAX_ERROR,
            "{} bytes: {shown:.200}",
            shown.len()
        );
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}

/// The embedded default policy with damage the input picks: bytes changed, cut,
/// inserted or overwritten by the input's own, or an SDK stamp (a custom section)
/// added with contents the input picks.
fn shaped(u: &mut Unstructured<'_>) -> Vec<u8> {
    let mut bytes = DEFAULT_POLICY.to_vec();
    if u.ratio(1, 2).unwrap_or(false) {
        let name = if u.arbitrary().unwrap_or(false) {
            VERSION_SECTION
        } else {
            HOOKS_SECTION
        };
        let data: Vec<u8> = u.arbitrary().unwrap_or_default();
        let mut section = leb128(name.len());
        section.extend_from_slice(name.as_bytes());
        section.extend_from_slice(&data);
        bytes.push(0);
        bytes.extend(leb128(section.len()));
        bytes.extend(section);
        return bytes;
    }
    for _ in 0..u.int_in_range(1..=3u8).unwrap_or(1) {
        let at = u.int_in_range(0..=bytes.len() - 1).unwrap_or(0);
        match u.int_in_range(0..=3u8).unwrap_or(0) {
            0 => bytes[at] = u.arbitrary().unwrap_or(0),
            1 => bytes.truncate(at.max(8)),
            2 => bytes.insert(at, u.arbitrary().unwrap_or(0)),
            _ => {
                let run: Vec<u8> = u.arbitrary().unwrap_or_default();
                let end = (at + run.len()).min(bytes.len());
                bytes.splice(at..end, run);
            }
        }
    }
    bytes
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
