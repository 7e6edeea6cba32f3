//! Who is calling: API keys → tenants and key ids.
//!
//! Keys are made by `signalbox keys new` ([`generate_key`]); only their SHA-256 hashes
//! are stored, in the config. Keys never reach logs or error messages: everything that
//! names a key outside this module names it by its id.

mod key;
mod key_ring;

pub use key::{
    KEY_PREFIX, KeyGenError, KeyHash, bearer_token, derived_key_id, format_key_hash, generate_key,
    hash_key, is_valid_key_id, parse_key_hash,
};
pub use key_ring::{AuthError, Caller, Disabled, KeyRing};
