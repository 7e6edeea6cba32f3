//! `[cluster]`: the shared store a fleet of gateways keeps its limits in.

use super::error::Invalid;
use super::location::KeyPath;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[cluster]`: present, the gateway shares its rate limits and budgets with every
/// replica pointed at the same Redis; absent, everything stays in the process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `redis://host:port` or `redis://host:port/db`, or `rediss://…` for TLS; no
    /// password in it (it would be shown wherever the URL is): name it in
    /// `password_env`.
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
    /// `[cluster.tls]`: the authority to trust and a client certificate, for a
    /// `rediss://` URL.
    #[serde(default)]
    pub tls: Option<StoreTls>,
    /// Redis's credentials, read from the environment at load.
    #[serde(skip)]
    pub credentials: Credentials,
}

/// `[cluster.tls]`, `[ledger.tls]`: TLS to one of the fleet's stores. The server's
/// certificate is always verified, chain and name: against `ca_file` when it is set,
/// else against the public web's roots (as the upstream clients do). Relative paths
/// are resolved against the config file's directory; the files are read at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreTls {
    /// PEM file of the certificate authorities to trust instead of the public roots
    /// (a private CA, as managed Redis and PostgreSQL services often use).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client's certificate chain, for a server that asks for one
    /// (mutual TLS); set with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key_file: Option<PathBuf>,
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
    let tls = ledger_tls(rest).map_err(|message| Invalid::new(at("url"), message))?;
    if let Some(store_tls) = &section.tls {
        if !tls {
            return Err(Invalid::new(
                KeyPath::dotted("ledger.tls"),
                "is for a `url` with `sslmode=require`",
            ));
        }
        validate_store_tls(store_tls, "ledger.tls")?;
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

/// Whether a PostgreSQL URL (after its scheme) asks for TLS: `sslmode=require` does,
/// `disable` and `prefer` (the default) do not. The gateway always verifies the
/// server's certificate, chain and name, so libpq's `verify-full` is spelt `require`.
fn ledger_tls(rest: &str) -> Result<bool, String> {
    let query = rest.split_once('?').map_or("", |(_, query)| query);
    let mode = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "sslmode")
        .map(|(_, value)| value)
        .next_back();
    match mode {
        None | Some("disable" | "prefer") => Ok(false),
        Some("require") => Ok(true),
        Some(other) => Err(format!(
            "has `sslmode={other}`: use `require` (TLS, the server's certificate verified, chain and name, as libpq's `verify-full`), `prefer` or `disable` (no TLS)"
        )),
    }
}

/// Checks that a client certificate comes with its key.
fn validate_store_tls(tls: &StoreTls, section: &str) -> Result<(), Invalid> {
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => Err(Invalid::new(
            KeyPath::dotted(section).key("key_file"),
            "is missing: `cert_file` needs the key of its certificate",
        )),
        (None, Some(_)) => Err(Invalid::new(
            KeyPath::dotted(section).key("cert_file"),
            "is missing: `key_file` is the key of a client certificate",
        )),
        _ => Ok(()),
    }
}

/// Checks `[cluster]` and reads its credentials with `env`.
pub(super) fn validate_cluster(
    section: Option<&ClusterSection>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, Invalid> {
    let Some(section) = section else {
        return Ok(Credentials::default());
    };
    let at = |key: &str| KeyPath::dotted("cluster").key(key);
    let url = &section.redis_url;
    let (rest, tls) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => {
            return Err(Invalid::new(
                at("redis_url"),
                "is not a redis:// (or, for TLS, rediss://) URL",
            ));
        }
    };
    if rest.contains('#') {
        // redis-rs reads `#insecure` as "do not verify the certificate".
        return Err(Invalid::new(
            at("redis_url"),
            "has a `#` fragment: certificate checks cannot be turned off; name the authority to trust in `[cluster.tls] ca_file`",
        ));
    }
    if let Some(store_tls) = &section.tls {
        if !tls {
            return Err(Invalid::new(
                KeyPath::dotted("cluster.tls"),
                "is for a rediss:// URL: `redis_url` is plain redis://",
            ));
        }
        validate_store_tls(store_tls, "cluster.tls")?;
    }
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
    Ok(Credentials {
        username: read("username_env", &section.username_env)?,
        password: read("password_env", &section.password_env)?,
    })
}
