//! `[cluster]`: the shared store a fleet of gateways keeps its limits in.

use super::error::Invalid;
use super::location::KeyPath;
use serde::Deserialize;
use std::time::Duration;

/// `[cluster]`: present, the gateway shares its rate limits and budgets with every
/// replica pointed at the same Redis; absent, everything stays in the process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `redis://host:port` or `redis://host:port/db`; no password in it (it would be
    /// shown wherever the URL is): name it in `password_env`.
    pub redis_url: String,
    /// The environment variable holding Redis's password (and `username_env` its
    /// user, for an ACL user).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The environment variable holding the Redis ACL user name.
    #[serde(default)]
    pub username_env: Option<String>,
    /// The longest any Redis call may take, in milliseconds, connecting included;
    /// past it the call counts as failed and `on_failure` decides.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// What a request meets when Redis cannot be reached in time.
    #[serde(default)]
    pub on_failure: FailMode,
    /// The prefix of every key the gateway writes, so fleets can share a Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Redis's credentials, read from the environment at load.
    #[serde(skip)]
    pub credentials: Credentials,
}

/// What happens to a request when the shared store does not answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Serve it, held to this replica's own limits (in memory, as without a
    /// cluster).
    #[default]
    FailOpen,
    /// Refuse it with a 503 saying the shared limits cannot be checked.
    FailClosed,
}

/// Redis's user and password. `Debug` shows whether they are set, never what they are.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The ACL user, if any.
    pub username: Option<String>,
    /// The password, if any.
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username.as_ref().map(|_| "…"))
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

fn default_timeout_ms() -> u64 {
    50
}

fn default_key_prefix() -> String {
    "signalbox".into()
}

impl ClusterSection {
    /// The bound on every Redis call.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Checks `[ledger]`'s PostgreSQL settings and reads its password with `env`.
pub(super) fn validate_ledger(
    section: &super::LedgerSection,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<super::cluster::Credentials, Invalid> {
    let at = |key: &str| KeyPath::dotted("ledger").key(key);
    if section.max_spill_rows == 0 {
        return Err(Invalid::new(at("max_spill_rows"), "must be above zero"));
    }
    let Some(url) = &section.url else {
        if section.password_env.is_some() {
            return Err(Invalid::new(
                at("password_env"),
                "is for `url`, which is not set",
            ));
        }
        return Ok(Credentials::default());
    };
    if section.path.is_some() {
        return Err(Invalid::new(
            at("url"),
            "set either `path` (a SQLite file) or `url` (PostgreSQL), not both",
        ));
    }
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(Invalid::new(at("url"), "is not a postgres:// URL"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((user, _)) = authority.rsplit_once('@')
        && user.contains(':')
    {
        return Err(Invalid::new(
            at("url"),
            "holds a password: name the environment variable that holds it in `password_env` instead",
        ));
    }
    if rest.contains("password=") {
        return Err(Invalid::new(
            at("url"),
            "holds a password: name the environment variable that holds it in `password_env` instead",
        ));
    }
    let password = match &section.password_env {
        None => None,
        Some(var) => match env(var) {
            Some(value) if !value.is_empty() => Some(value),
            _ => {
                return Err(Invalid::new(
                    at("password_env"),
                    format!("environment variable `{var}` is not set"),
                ));
            }
        },
    };
    Ok(Credentials {
        username: None,
        password,
    })
}

/// Checks `[cluster]` and reads its credentials with `env`.
pub(super) fn validate_cluster(
    section: Option<&ClusterSection>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ClusterSection>, Invalid> {
    let Some(section) = section else {
        return Ok(None);
    };
    let at = |key: &str| KeyPath::dotted("cluster").key(key);
    let url = &section.redis_url;
    let Some(rest) = url.strip_prefix("redis://") else {
        return Err(Invalid::new(at("redis_url"), "is not a redis:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(Invalid::new(
            at("redis_url"),
            "holds credentials: name the environment variables that hold them in `password_env` (and `username_env`) instead",
        ));
    }
    if authority.is_empty() {
        return Err(Invalid::new(at("redis_url"), "names no host"));
    }
    if section.timeout_ms == 0 {
        return Err(Invalid::new(at("timeout_ms"), "must be above zero"));
    }
    if section.key_prefix.is_empty() {
        return Err(Invalid::new(at("key_prefix"), "must not be empty"));
    }
    let read = |key: &str, var: &Option<String>| match var {
        None => Ok(None),
        Some(var) => match env(var) {
            Some(value) if !value.is_empty() => Ok(Some(value)),
            _ => Err(Invalid::new(
                at(key),
                format!("environment variable `{var}` is not set"),
            )),
        },
    };
    let mut section = section.clone();
    section.credentials = Credentials {
        username: read("username_env", &section.username_env)?,
        password: read("password_env", &section.password_env)?,
    };
    Ok(Some(section))
}
