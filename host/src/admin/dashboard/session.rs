//! Dashboard sessions: a random id in an `HttpOnly; SameSite=Strict` cookie, kept in
//! memory with an expiry, each remembering its scope and its CSRF token.
//!
//! Sessions live in this process only: a restart signs everyone out, which is the
//! safe side for an operator's view. The table is bounded so that a flood of
//! sign-ins cannot grow memory; when full, the oldest session goes.

use super::super::auth::Scope;
use crate::tenancy::{KeyHash, hash_key};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "sb_dashboard";
/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 1024;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// What it may see and do.
    pub scope: Scope,
    /// The token every state-changing request must carry.
    pub csrf: String,
    expires: Instant,
}

/// The sessions of this process, by the hash of their id (so that a lookup's timing
/// says nothing about ids held).
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<KeyHash, Session>>,
}

impl Sessions {
    /// Opens a session for `scope`: its id (for the cookie) and the session.
    pub fn open(&self, scope: Scope) -> Option<(String, Session)> {
        let id = random_hex()?;
        let session = Session {
            scope,
            csrf: random_hex()?,
            expires: Instant::now() + LIFETIME,
        };
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(hash_key(&id), session.clone());
        Some((id, session))
    }

    /// The live session whose id is in the `Cookie` header, if any.
    pub fn find(&self, cookie_header: Option<&[u8]>) -> Option<Session> {
        let id = cookie_value(cookie_header?)?;
        let key = hash_key(id);
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session whose id is in the `Cookie` header.
    pub fn close(&self, cookie_header: Option<&[u8]>) {
        if let Some(id) = cookie_header.and_then(cookie_value) {
            let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(&hash_key(id));
        }
    }

    /// Sessions held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The `Set-Cookie` value that carries `id` (`Secure` when the listener is TLS).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Our cookie's value in a `Cookie` header (`a=1; sb_dashboard=…`).
fn cookie_value(header: &[u8]) -> Option<&str> {
    let header = std::str::from_utf8(header).ok()?;
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// 32 random bytes as hex: a session id or a CSRF token.
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_gone_after_close() {
        let sessions = Sessions::default();
        let (id, opened) = sessions.open(Scope::Tenant("acme".into())).unwrap();
        assert_eq!(id.len(), 64);
        let header = format!("other=1; {COOKIE}={id}");
        let found = sessions.find(Some(header.as_bytes())).unwrap();
        assert_eq!(found.scope, Scope::Tenant("acme".into()));
        assert!(found.csrf_matches(&opened.csrf));
        assert!(!found.csrf_matches("nope") && !found.csrf_matches(""));
        assert!(sessions.find(Some(b"sb_dashboard=0000")).is_none());
        assert!(sessions.find(None).is_none());
        sessions.close(Some(header.as_bytes()));
        assert!(sessions.find(Some(header.as_bytes())).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        for _ in 0..MAX_SESSIONS + 10 {
            sessions.open(Scope::Operator).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let c = set_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(c.contains("Path=/dashboard") && c.ends_with("; Secure"));
        assert!(!set_cookie("abc", false).contains("Secure"));
    }
}
