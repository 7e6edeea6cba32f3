//! API keys themselves: how they are made, hashed, and written in the config.

use sha2::{Digest, Sha256};

/// A key's SHA-256.
pub type KeyHash = [u8; 32];

/// Every key Signalbox makes starts with this, so a leaked key is recognisable (secret
/// scanners can match it) and cannot be mistaken for a provider's key.
pub const KEY_PREFIX: &str = "sb-";

/// Base62 characters after the prefix: 43 of them carry 43 × log2(62) ≈ 256.03 bits,
/// as much entropy as 32 random bytes.
const KEY_BODY_CHARS: usize = 43;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The credential of an `Authorization: Bearer <token>` header value: the scheme in
/// either case, then the token, with the spaces and tabs HTTP allows around it (and
/// only those: a token with any other character around it is another token). None
/// when the header is not that: another scheme, no token, or a token with a space.
pub fn bearer_token(header: &[u8]) -> Option<&str> {
    let header = std::str::from_utf8(header).ok()?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?
        .trim_matches([' ', '\t']);
    (!token.is_empty() && !token.contains([' ', '\t'])).then_some(token)
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct KeyGenError(getrandom::Error);

/// A new API key: [`KEY_PREFIX`] and 43 base62 characters drawn from the operating
/// system's random source (about 256 bits), safe in URLs, headers and shell commands.
pub fn generate_key() -> Result<String, KeyGenError> {
    let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_BODY_CHARS);
    key.push_str(KEY_PREFIX);
    let mut pool = [0u8; 64];
    let mut drawn = 0;
    while drawn < KEY_BODY_CHARS {
        getrandom::fill(&mut pool).map_err(KeyGenError)?;
        for &byte in &pool {
            // 248 = 4 × 62: bytes at or above it would make the first characters of the
            // alphabet more likely than the rest, so they are thrown away.
            if byte < 248 && drawn < KEY_BODY_CHARS {
                key.push(char::from(BASE62[usize::from(byte % 62)]));
                drawn += 1;
            }
        }
    }
    Ok(key)
}

/// Hashes an API key as stored in the config.
pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses `sha256:<64 hex digits>`.
pub fn parse_key_hash(text: &str) -> Option<KeyHash> {
    let digits = text.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    // Exactly 64 hex digits: the length is checked, and a sign is not a digit.
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// Formats a hash as the config stores it.
pub fn format_key_hash(hash: &KeyHash) -> String {
    format!("sha256:{}", hex::encode(hash))
}

/// The id of a key listed without one (in `key_hashes`): the first 8 hex digits of its
/// hash. It names the key in logs and error messages and reveals nothing usable.
pub fn derived_key_id(hash: &KeyHash) -> String {
    format_key_hash(hash)["sha256:".len()..]
        .chars()
        .take(8)
        .collect()
}

/// Whether `id` can name a key: 1 to 64 ASCII letters, digits, `-`, `_` or `.`. Ids
/// appear in logs, error messages and TOML, so they stay plain.
pub fn is_valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_text() {
        let h = hash_key("sb-alpha");
        assert_eq!(parse_key_hash(&format_key_hash(&h)), Some(h));
        assert_eq!(parse_key_hash("sha256:zz"), None);
        assert_eq!(parse_key_hash("md5:00"), None);
        let text = format_key_hash(&h);
        assert_eq!(parse_key_hash(&text[..text.len() - 2]), None, "too short");
        assert_eq!(parse_key_hash(&format!("{text}00")), None, "too long");
    }

    #[test]
    fn a_sign_is_not_a_hex_digit() {
        // `u8::from_str_radix("+f", 16)` is Ok(15): a hand-written parser built on it
        // accepted a second spelling of some hashes.
        let text = format!("sha256:+f{}", "0".repeat(62));
        assert_eq!(parse_key_hash(&text), None);
        let text = format!("sha256:-f{}", "0".repeat(62));
        assert_eq!(parse_key_hash(&text), None);
    }

    #[test]
    fn generated_keys_are_prefixed_base62_and_distinct() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        for key in [&a, &b] {
            let body = key.strip_prefix(KEY_PREFIX).unwrap();
            assert_eq!(body.len(), KEY_BODY_CHARS);
            assert!(body.bytes().all(|c| c.is_ascii_alphanumeric()), "{key}");
        }
    }

    #[test]
    fn derived_ids_are_the_hash_prefix() {
        let h = hash_key("sb-alpha");
        let id = derived_key_id(&h);
        assert_eq!(id.len(), 8);
        assert!(format_key_hash(&h).starts_with(&format!("sha256:{id}")));
        assert!(is_valid_key_id(&id));
        assert!(!is_valid_key_id(""));
        assert!(!is_valid_key_id("has space"));
        assert!(is_valid_key_id("ci-bot_2.prod"));
    }
}
