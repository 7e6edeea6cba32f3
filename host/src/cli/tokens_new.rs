//! `signalbox tokens new`: a new admin API token, shown once, and the `[[admin.tokens]]`
//! entry that stores only its hash (as `keys new` does for API keys).

use crate::tenancy::{KEY_PREFIX, format_key_hash, generate_key, hash_key};
use anyhow::bail;

/// What admin tokens start with: recognisable, and never mistaken for an API key.
const TOKEN_PREFIX: &str = "sb-admin-";

/// Prints a fresh token for `tenant` (a deploy token), or an operator token when
/// `tenant` is `None`.
pub fn run(tenant: Option<&str>) -> anyhow::Result<()> {
    if let Some(tenant) = tenant
        && (tenant.is_empty() || tenant.contains(['"', '\\', '\n']))
    {
        bail!("`{tenant}` is not a tenant id");
    }
    let key = generate_key()?;
    let token = format!("{TOKEN_PREFIX}{}", &key[KEY_PREFIX.len()..]);
    let hash = format_key_hash(&hash_key(&token));
    eprintln!("This token is shown only once: Signalbox keeps only its hash. Store it now.");
    // The token alone on the first line, for scripts (`head -1`); then TOML to paste.
    println!("{token}");
    println!();
    match tenant {
        Some(tenant) => {
            println!("# Deploy token of tenant `{tenant}`: acts on that tenant only.");
        }
        None => println!("# Operator token: acts on every tenant and reads /metrics."),
    }
    println!("# Paste this into the config after the [admin] section; the token itself");
    println!("# is not stored.");
    println!("[[admin.tokens]]");
    println!("hash = \"{hash}\"");
    if let Some(tenant) = tenant {
        println!("tenant = \"{tenant}\"");
    }
    Ok(())
}
