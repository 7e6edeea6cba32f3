//! The `Authorization` header, as the key ring (`tenancy::KeyRing`) and the admin
//! API's tokens (`admin::AdminTokens`) read it, and key hashes as the config writes
//! them (`tenancy::parse_key_hash`).
//!
//! Properties: a header authenticates exactly when it is `Bearer <key>` (or
//! `bearer`, with the key trimmed) for a configured key, and a disabled one is
//! refused by name; no refusal shows the presented key; a key hash reads back as it
//! is written.

use super::CI_TIME;
use crate::admin::{AdminTokens, Scope};
use crate::config::AdminTokenSection;
use crate::tenancy::{
    AuthError, Caller, Disabled, KeyRing, format_key_hash, hash_key, parse_key_hash,
};
use arbitrary::Unstructured;

/// The ring's keys: (key, tenant, disabled).
const KEYS: &[(&str, &str, Option<&str>)] = &[
    ("sb-alpha-0123456789abcdefghij", "alpha", None),
    ("sb-beta-0123456789abcdefghijk", "beta", None),
    ("sb-off-0123456789abcdefghijkl", "alpha", Some("key")),
    ("sb-gone-0123456789abcdefghijk", "gone", Some("tenant")),
];
const OPERATOR: &str = "op-token-0123456789abcdef";

#[test]
fn key_ring() {
    let ring = ring();
    let tokens = AdminTokens::new(&[AdminTokenSection {
        hash: format_key_hash(&hash_key(OPERATOR)),
        tenant: None,
    }]);
    bolero::check!(name = "key_ring")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_header(&ring, &tokens, bytes);
            check_header(&ring, &tokens, &shaped(&mut Unstructured::new(bytes)));
            check_key_hash(&String::from_utf8_lossy(bytes));
        });
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::default();
    for (i, (key, tenant, disabled)) in KEYS.iter().enumerate() {
        let caller = Caller {
            tenant: (*tenant).into(),
            key_id: format!("k{i}").into(),
            key_index: i,
        };
        let disabled = disabled.map(|what| match what {
            "key" => Disabled::Key(format!("k{i}").into()),
            _ => Disabled::Tenant((*tenant).into()),
        });
        assert!(ring.insert(hash_key(key), caller, disabled));
    }
    ring
}

/// The token of a well-formed header: `Bearer ` or `bearer `, then the token with
/// the spaces and tabs around it trimmed (HTTP's optional white space, nothing else),
/// non-empty and without a space or tab inside.
fn token_of(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?;
    let rest = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))?;
    let token = rest
        .trim_start_matches([' ', '\t'])
        .trim_end_matches([' ', '\t']);
    (!token.is_empty() && !token.chars().any(|c| c == ' ' || c == '\t')).then_some(token)
}

fn check_header(ring: &KeyRing, tokens: &AdminTokens, header: &[u8]) {
    let token = token_of(header);
    let known = token.and_then(|t| KEYS.iter().position(|(key, ..)| *key == t));
    match (ring.authenticate(Some(header)), known) {
        (Ok(caller), Some(i)) => {
            assert_eq!(caller.key_index, i);
            assert!(KEYS[i].2.is_none(), "a disabled key was let in");
        }
        (Err(AuthError::Disabled(what)), Some(i)) => {
            assert!(KEYS[i].2.is_some());
            let shown = AuthError::Disabled(what).to_string();
            assert!(!shown.contains(KEYS[i].0), "{shown}");
        }
        (Err(AuthError::Unknown), None) => assert!(token.is_some()),
        (Err(AuthError::Malformed), None) => assert!(token.is_none()),
        (result, _) => panic!("{header:?} gave {result:?}"),
    }
    if let Err(e) = ring.authenticate(Some(header)) {
        let shown = e.to_string();
        if let Some(token) = token.filter(|t| t.len() >= 16) {
            assert!(!shown.contains(token), "the key in {shown}");
        }
    }
    // Admin tokens are read from the header as keys are.
    let scope = tokens.scope(Some(header));
    assert_eq!(scope.is_some(), token == Some(OPERATOR), "{header:?}");
    if let Some(scope) = scope {
        assert_eq!(scope, Scope::Operator);
    }
}

fn check_key_hash(text: &str) {
    if let Some(hash) = parse_key_hash(text) {
        assert_eq!(format_key_hash(&hash), text.to_ascii_lowercase());
    }
    let hash = hash_key(text);
    assert_eq!(parse_key_hash(&format_key_hash(&hash)), Some(hash));
    let upper = format_key_hash(&hash)
        .to_ascii_uppercase()
        .replacen("SHA256", "sha256", 1);
    assert_eq!(parse_key_hash(&upper), Some(hash));
}

/// A header built around a configured key or token: every spelling of the scheme,
/// white space of every kind, the key cut, lengthened or with a byte changed.
fn shaped(u: &mut Unstructured<'_>) -> Vec<u8> {
    const SCHEMES: &[&str] = &[
        "Bearer ", "bearer ", "BEARER ", "Bearer", "Basic ", "", "Bearer  ", " Bearer ",
    ];
    const SPACES: &[&str] = &["", " ", "\t", "  ", "\u{a0}", "\u{3000}", "\r\n", "\u{0}"];
    let mut header = u.choose(SCHEMES).map_or("", |s| *s).as_bytes().to_vec();
    header.extend_from_slice(u.choose(SPACES).map_or("", |s| *s).as_bytes());
    let mut key = match u.int_in_range(0..=KEYS.len()).unwrap_or(0) {
        i if i < KEYS.len() => KEYS[i].0.as_bytes().to_vec(),
        _ => OPERATOR.as_bytes().to_vec(),
    };
    match u.int_in_range(0..=4u8).unwrap_or(0) {
        0 => {
            let len = u.int_in_range(0..=key.len()).unwrap_or(0);
            key.truncate(len);
        }
        1 => key.push(u.arbitrary().unwrap_or(b'x')),
        2 => {
            let at = u.int_in_range(0..=key.len() - 1).unwrap_or(0);
            key[at] = u.arbitrary().unwrap_or(b'x');
        }
        _ => {}
    }
    header.extend_from_slice(&key);
    header.extend_from_slice(u.choose(SPACES).map_or("", |s| *s).as_bytes());
    if u.ratio(1, 8).unwrap_or(false) {
        header.extend_from_slice(b" extra");
    }
    header
}
