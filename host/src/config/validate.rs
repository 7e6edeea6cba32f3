//! Checking what the file's shape cannot say: references between sections, unique
//! ids, values in range, secrets present in the environment.
//!
//! Works on the plain serde structs and names each problem by its key path; the caller
//! places it in the file.

use super::error::Invalid;
use super::keys::validate_keys;
use super::location::KeyPath;
use super::sections::ConfigFile;
use super::{OTLP_BUILT_IN, ProviderKind, TelemetrySection};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What validation learns beyond "it is fine".
pub(super) struct Validated {
    /// Provider API keys, by provider name.
    pub secrets: BTreeMap<String, String>,
    /// `[telemetry]`, checked.
    pub telemetry: TelemetrySection,
    /// `[cluster]`'s credentials.
    pub cluster_credentials: super::Credentials,
    /// `[ledger]`'s database password, when it has one.
    pub ledger_credentials: super::Credentials,
}

/// Checks `raw`, looking secrets up with `env`.
pub(super) fn validate(
    raw: &ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Validated, Invalid> {
    let (providers, secrets) = validate_providers(raw, env)?;
    let target_ids = validate_targets(raw, &providers)?;
    let tenant_ids = validate_tenants(raw, &target_ids)?;
    validate_admin(raw, &tenant_ids)?;
    let telemetry =
        super::telemetry::validate_telemetry(raw.telemetry.clone(), None, OTLP_BUILT_IN)?;
    super::server::validate_server(&raw.server)?;
    let cluster_credentials = super::cluster::validate_cluster(raw.cluster.as_ref(), env)?;
    let ledger_credentials = super::cluster::validate_ledger(&raw.ledger, env)?;
    Ok(Validated {
        secrets,
        telemetry,
        cluster_credentials,
        ledger_credentials,
    })
}

type Secrets = BTreeMap<String, String>;

fn validate_providers<'a>(
    raw: &'a ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(HashSet<&'a str>, Secrets), Invalid> {
    let mut names = HashSet::new();
    let mut secrets = BTreeMap::new();
    for (i, p) in raw.providers.iter().enumerate() {
        let at = |key: &str| KeyPath::dotted("providers").index(i).key(key);
        if !names.insert(p.name.as_str()) {
            return Err(Invalid::new(
                at("name"),
                format!("duplicate provider `{}`", p.name),
            ));
        }
        match p.kind {
            ProviderKind::Simulated => {}
            ProviderKind::Openai
            | ProviderKind::OpenaiResponses
            | ProviderKind::Anthropic
            | ProviderKind::Azure => {
                let Some(url) = &p.base_url else {
                    return Err(Invalid::new(at("base_url"), "required for this kind"));
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Invalid::new(
                        at("base_url"),
                        format!("`{url}` is not an http(s) URL"),
                    ));
                }
            }
        }
        if p.kind != ProviderKind::Azure {
            for (key, set) in [
                ("api_version", p.api_version.is_some()),
                ("entra_token_env", p.entra_token_env.is_some()),
            ] {
                if set {
                    return Err(Invalid::new(at(key), "only for `kind = \"azure\"`"));
                }
            }
        }
        let secret = match (&p.api_key_env, &p.entra_token_env) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    at("entra_token_env"),
                    "set `api_key_env` or `entra_token_env`, not both",
                ));
            }
            (Some(var), None) => Some(("api_key_env", var)),
            (None, Some(var)) => Some(("entra_token_env", var)),
            (None, None) => None,
        };
        if let Some((key, var)) = secret {
            match env(var) {
                Some(key) if !key.is_empty() => {
                    secrets.insert(p.name.clone(), key);
                }
                _ => {
                    return Err(Invalid::new(
                        at(key),
                        format!("environment variable `{var}` is not set"),
                    ));
                }
            }
        }
    }
    Ok((names, secrets))
}

/// Checks targets and aliases; returns the target ids.
fn validate_targets<'a>(
    raw: &'a ConfigFile,
    providers: &HashSet<&str>,
) -> Result<HashSet<&'a str>, Invalid> {
    let mut ids = HashSet::new();
    for (i, t) in raw.targets.iter().enumerate() {
        let at = |key: &str| KeyPath::dotted("targets").index(i).key(key);
        if t.id.is_empty() || !ids.insert(t.id.as_str()) {
            return Err(Invalid::new(
                at("id"),
                format!("missing or duplicate target id `{}`", t.id),
            ));
        }
        if !providers.contains(t.provider.as_str()) {
            return Err(Invalid::new(
                at("provider"),
                format!("no provider named `{}`", t.provider),
            ));
        }
        for (key, price) in [
            ("input_price", t.input_price),
            ("output_price", t.output_price),
            ("cache_read_price", t.cache_read_price.unwrap_or(0.0)),
            ("cache_write_price", t.cache_write_price.unwrap_or(0.0)),
        ] {
            // NaN is no price either.
            if price.is_nan() || price < 0.0 {
                return Err(Invalid::new(at(key), "prices must be zero or more"));
            }
        }
        for (key, ms) in [
            ("connect_timeout_ms", t.connect_timeout_ms),
            ("first_byte_timeout_ms", t.first_byte_timeout_ms),
            ("total_timeout_ms", t.total_timeout_ms),
            ("stream_idle_timeout_ms", t.stream_idle_timeout_ms),
        ] {
            if ms == 0 {
                return Err(Invalid::new(at(key), "timeouts must be above zero"));
            }
        }
    }
    if raw.targets.is_empty() {
        return Err(Invalid::new(
            KeyPath::dotted("targets"),
            "at least one target is required",
        ));
    }
    let models: HashSet<&str> = raw.targets.iter().map(|t| t.model.as_str()).collect();
    for (alias, names) in &raw.aliases {
        for (n, name) in names.iter().enumerate() {
            if !models.contains(name.as_str()) && !ids.contains(name.as_str()) {
                return Err(Invalid::new(
                    KeyPath::dotted("aliases").key(alias).index(n),
                    format!("`{name}` is neither a target model nor a target id"),
                ));
            }
        }
    }
    Ok(ids)
}

/// Checks tenants, their keys and the targets they name; returns the tenant ids.
fn validate_tenants<'a>(
    raw: &'a ConfigFile,
    target_ids: &HashSet<&str>,
) -> Result<HashSet<&'a str>, Invalid> {
    let mut tenant_ids = HashSet::new();
    let mut key_hashes = HashMap::new();
    for (i, t) in raw.tenants.iter().enumerate() {
        let at = |key: &str| KeyPath::dotted("tenants").index(i).key(key);
        if t.id.is_empty() || !tenant_ids.insert(t.id.as_str()) {
            return Err(Invalid::new(
                at("id"),
                format!("missing or duplicate tenant id `{}`", t.id),
            ));
        }
        validate_keys(t, i, &mut key_hashes)?;
        let named = [
            ("safe_route", Some(&t.safe_route)),
            ("targets", t.targets.as_ref()),
        ];
        for (key, ids) in named {
            for (n, id) in ids.into_iter().flatten().enumerate() {
                if !target_ids.contains(id.as_str()) {
                    return Err(Invalid::new(
                        at(key).index(n),
                        format!("no target with id `{id}`"),
                    ));
                }
            }
        }
        if t.safe_route.is_empty() {
            return Err(Invalid::new(
                at("safe_route"),
                "name at least one target to use when the policy fails",
            ));
        }
        if t.review_streams == super::sections::ReviewStreams::FirstTokens(0) {
            return Err(Invalid::new(
                at("review_streams").key("first_tokens"),
                "must be at least 1 (or review_streams = \"off\")",
            ));
        }
        if let Some(cap) = t.max_request_usd
            && !(cap.is_finite() && cap > 0.0)
        {
            return Err(Invalid::new(
                at("max_request_usd"),
                "must be a positive number of US dollars",
            ));
        }
    }
    if raw.tenants.is_empty() {
        return Err(Invalid::new(
            KeyPath::dotted("tenants"),
            "at least one tenant is required",
        ));
    }
    Ok(tenant_ids)
}

fn validate_admin(raw: &ConfigFile, tenant_ids: &HashSet<&str>) -> Result<(), Invalid> {
    let admin = &raw.admin;
    if let Some(listen) = &admin.listen
        && listen.parse::<std::net::SocketAddr>().is_err()
    {
        return Err(Invalid::new(
            KeyPath::dotted("admin.listen"),
            format!("`{listen}` is not an address:port"),
        ));
    }
    for (i, token) in admin.tokens.iter().enumerate() {
        let at = |key: &str| KeyPath::dotted("admin.tokens").index(i).key(key);
        if crate::tenancy::parse_key_hash(&token.hash).is_none() {
            return Err(Invalid::new(
                at("hash"),
                "expected `sha256:` followed by the 64 hex digits of the token's SHA-256",
            ));
        }
        if let Some(t) = &token.tenant
            && !tenant_ids.contains(t.as_str())
        {
            return Err(Invalid::new(
                at("tenant"),
                format!("no tenant with id `{t}`"),
            ));
        }
    }
    if admin.listen.is_some() && admin.tokens.is_empty() {
        return Err(Invalid::new(
            KeyPath::dotted("admin.tokens"),
            "an admin listener needs at least one token",
        ));
    }
    Ok(())
}
