//! `signalbox keys new`: a new API key, shown once, and the config entry that stores
//! only its hash.

use crate::tenancy::{derived_key_id, format_key_hash, generate_key, hash_key, is_valid_key_id};
use anyhow::bail;

pub fn run(tenant: &str, id: Option<&str>) -> anyhow::Result<()> {
    if tenant.is_empty() || tenant.contains(['"', '\\', '\n']) {
        bail!("`{tenant}` is not a tenant id");
    }
    if let Some(id) = id
        && !is_valid_key_id(id)
    {
        bail!("`{id}` is not a valid key id: use 1 to 64 letters, digits, `-`, `_` or `.`");
    }
    let key = generate_key()?;
    let hash = hash_key(&key);
    let id = id.map_or_else(|| derived_key_id(&hash), str::to_owned);
    eprintln!("This key is shown only once: Signalbox keeps only its hash. Store it now.");
    // The key alone on the first line, so that scripts can take it with `head -1`; the
    // rest is TOML, comments included, ready to paste.
    println!("{key}");
    println!();
    println!("# API key `{id}` of tenant `{tenant}`. Paste this after the tenant's");
    println!("# [[tenants]] entry (and before the next one); the key itself is not stored.");
    println!("[[tenants.keys]]");
    println!("id = \"{id}\"");
    println!("hash = \"{}\"", format_key_hash(&hash));
    Ok(())
}
