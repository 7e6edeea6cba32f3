//! Checking tenants' API keys and the limits of tenants and keys.

use super::error::Invalid;
use super::location::KeyPath;
use super::{LimitsSection, TenantSection};
use std::collections::{HashMap, HashSet};

/// What the hash must look like, in error messages.
const HASH_FORMAT: &str = "expected `sha256:` followed by the 64 hex digits of the key's SHA-256";

/// Checks tenant `i`'s keys and limits: well-formed hashes, each key listed once in the
/// whole file (`seen` maps hashes to where they were first listed), unique plain ids.
pub(super) fn validate_keys(
    t: &TenantSection,
    i: usize,
    seen: &mut HashMap<crate::tenancy::KeyHash, KeyPath>,
) -> Result<(), Invalid> {
    let tenant = KeyPath::dotted("tenants").index(i);
    validate_limits(&t.limits, &tenant.clone().key("limits"))?;
    let mut ids = HashSet::new();
    let listed = t.key_hashes.iter().enumerate().map(|(k, hash)| {
        let path = tenant.clone().key("key_hashes").index(k);
        (path.clone(), path, None, hash)
    });
    let sections = t.keys.iter().enumerate().map(|(k, key)| {
        let at = tenant.clone().key("keys").index(k);
        (
            at.clone().key("hash"),
            at.key("id"),
            Some((k, key)),
            &key.hash,
        )
    });
    for (hash_path, id_path, section, text) in listed.chain(sections) {
        let Some(hash) = crate::tenancy::parse_key_hash(text) else {
            return Err(Invalid::new(hash_path, HASH_FORMAT));
        };
        if let Some(first) = seen.get(&hash) {
            return Err(Invalid::new(
                hash_path,
                format!("the same key is already listed at {first}"),
            ));
        }
        seen.insert(hash, hash_path.clone());
        let id = match section {
            Some((k, key)) => {
                if !crate::tenancy::is_valid_key_id(&key.id) {
                    return Err(Invalid::new(
                        id_path,
                        format!(
                            "`{}` is not a valid key id: use 1 to 64 letters, digits, `-`, `_` or `.`",
                            key.id
                        ),
                    ));
                }
                // A key's limits sit beside its id and hash, not in a table of their own.
                validate_limits(&key.limits(), &tenant.clone().key("keys").index(k))?;
                key.id.clone()
            }
            None => crate::tenancy::derived_key_id(&hash),
        };
        if !ids.insert(id.clone()) {
            return Err(Invalid::new(
                id_path,
                format!("duplicate key id `{id}` in this tenant"),
            ));
        }
    }
    Ok(())
}

/// A limit, when set, must allow something: `0` would refuse every request, which
/// `disabled = true` says more clearly. `at` is the table holding the limit keys.
fn validate_limits(limits: &LimitsSection, at: &KeyPath) -> Result<(), Invalid> {
    for (field, value) in [
        ("requests_per_minute", limits.requests_per_minute),
        ("tokens_per_minute", limits.tokens_per_minute),
        ("max_in_flight", limits.max_in_flight),
    ] {
        if value == Some(0) {
            return Err(Invalid::new(
                at.clone().key(field),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
    }
    for (field, value) in [
        ("budget_usd_per_day", limits.budget_usd_per_day),
        ("budget_usd_per_month", limits.budget_usd_per_month),
    ] {
        if value.is_some_and(|usd| !(usd.is_finite() && usd > 0.0)) {
            return Err(Invalid::new(
                at.clone().key(field),
                "must be a positive number of USD (leave it out for no limit)",
            ));
        }
    }
    Ok(())
}
