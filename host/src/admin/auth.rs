//! Who may call the admin API: operator tokens (every tenant) and tenant-scoped
//! deploy tokens (one tenant). Stored as SHA-256 hashes, like API keys.

use crate::config::AdminTokenSection;
use crate::tenancy::{KeyHash, hash_key, parse_key_hash};
use std::collections::HashMap;

/// What a presented token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant.
    Operator,
    /// This tenant only.
    Tenant(String),
}

impl Scope {
    /// Whether this scope may act on `tenant`.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Tenant(t) => t == tenant,
        }
    }
}

/// The admin tokens by hash.
#[derive(Debug, Default)]
pub struct AdminTokens {
    by_hash: HashMap<KeyHash, Scope>,
}

impl AdminTokens {
    /// From the config (hashes were validated at load).
    pub fn new(tokens: &[AdminTokenSection]) -> Self {
        let by_hash = tokens
            .iter()
            .filter_map(|t| {
                let scope = t.tenant.clone().map_or(Scope::Operator, Scope::Tenant);
                parse_key_hash(&t.hash).map(|h| (h, scope))
            })
            .collect();
        AdminTokens { by_hash }
    }

    /// The scope of the token in an `Authorization: Bearer …` header. The comparison
    /// after the lookup is constant-time; nothing about a wrong token is logged.
    pub fn scope(&self, authorization: Option<&[u8]>) -> Option<Scope> {
        self.scope_of_token(crate::tenancy::bearer_token(authorization?)?)
    }

    /// The scope of a bare token (the dashboard's sign-in form); the same check as
    /// [`AdminTokens::scope`].
    pub fn scope_of_token(&self, token: &str) -> Option<Scope> {
        let presented = hash_key(token);
        let (stored, scope) = self.by_hash.get_key_value(&presented)?;
        let same = stored
            .iter()
            .zip(&presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        same.then(|| scope.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::format_key_hash;

    #[test]
    fn tokens_map_to_scopes() {
        let tokens = AdminTokens::new(&[
            AdminTokenSection {
                hash: format_key_hash(&hash_key("op")),
                tenant: None,
            },
            AdminTokenSection {
                hash: format_key_hash(&hash_key("team")),
                tenant: Some("acme".into()),
            },
        ]);
        assert_eq!(tokens.scope(Some(b"Bearer op")), Some(Scope::Operator));
        let team = tokens.scope(Some(b"Bearer team")).unwrap();
        assert!(team.allows("acme") && !team.allows("globex"));
        assert_eq!(tokens.scope(Some(b"Bearer nope")), None);
        assert_eq!(tokens.scope(Some(b"op")), None);
        assert_eq!(tokens.scope(None), None);
    }
}
