//! The gateway's configuration: one TOML file, read once at start-up.
//!
//! The file is parsed into plain serde structs (`deny_unknown_fields`, so a typo is an
//! error, not a silently ignored key), then validated into [`Config`], whose errors
//! name the file, the key path and what is wrong. Secrets never appear in the file:
//! a provider names the environment variable that holds its API key.

mod file;

pub use file::{
    AdminSection, AdminTokenSection, AliasMap, DecisionLogSection, EngineSection, KeySection,
    LedgerSection, LimitsSection, ProviderKind, ProviderSection, ServerSection, SimulatedSection,
    TargetSection, TelemetrySection, TenantSection, TlsSection,
};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration used when `serve` runs without `--config`: a demo tenant and two
/// simulated models, routed by the embedded default policy. Works offline.
pub const EMBEDDED_DEFAULT: &str = include_str!("embedded_default.toml");

/// Where the embedded default says it comes from, in error messages.
pub const EMBEDDED_NAME: &str = "<embedded default config>";

/// The standard OpenTelemetry variable that takes the place of `telemetry.otlp_endpoint`.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Whether this binary can export spans (built with the `otlp` cargo feature).
pub const OTLP_BUILT_IN: bool = cfg!(feature = "otlp");

/// A configuration error: where, and what.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct ConfigError {
    /// The config file (or the embedded default).
    pub file: String,
    /// The key path, e.g. `targets[2].provider`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from.
    pub source: String,
    /// Listener and limits.
    pub server: ServerSection,
    /// Policy engine settings.
    pub engine: EngineSection,
    /// Upstream providers, by name.
    pub providers: Vec<ProviderSection>,
    /// Targets, in configuration order (the order policies see).
    pub targets: Vec<TargetSection>,
    /// Model aliases clients may ask for.
    pub aliases: AliasMap,
    /// Tenants.
    pub tenants: Vec<TenantSection>,
    /// Admin API and policy store.
    pub admin: AdminSection,
    /// The usage ledger.
    pub ledger: LedgerSection,
    /// The decision log.
    pub decision_log: DecisionLogSection,
    /// Span export (OTLP).
    pub telemetry: TelemetrySection,
    /// Provider API keys read from the environment, by provider name.
    pub secrets: BTreeMap<String, String>,
}

impl Config {
    /// Reads and validates `path`, taking secrets from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            path: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let mut config = Config::parse(&text, &path.display().to_string(), &base, &|name| {
            std::env::var(name).ok()
        })?;
        config.telemetry_from_environment()?;
        Ok(config)
    }

    /// The embedded default configuration. It names no secret, but the demo can still
    /// export its spans when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub fn embedded() -> Result<Config, ConfigError> {
        let mut config = Config::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new("."), &|_| None)?;
        config.telemetry_from_environment()?;
        Ok(config)
    }

    /// Lets `OTEL_EXPORTER_OTLP_ENDPOINT`, when set, take the place of
    /// `telemetry.otlp_endpoint`. Kept out of [`Config::parse`], whose `env` answers
    /// for secrets only: a caller vouching for every secret name must not switch span
    /// export on by the same stroke.
    fn telemetry_from_environment(&mut self) -> Result<(), ConfigError> {
        let Some(url) = std::env::var(OTLP_ENDPOINT_ENV).ok() else {
            return Ok(());
        };
        self.telemetry = validate_telemetry(self.telemetry.clone(), Some(url), OTLP_BUILT_IN)
            .map_err(|(path, message)| ConfigError {
                file: self.source.clone(),
                path,
                message,
            })?;
        Ok(())
    }

    /// Parses and validates TOML `text`; relative policy and TLS file paths resolve
    /// against `base`; `env` looks up secrets. The TLS files, when configured, are read
    /// and checked here, so a bad certificate stops start-up like any other mistake.
    pub fn parse(
        text: &str,
        source: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |path: &str, message: String| ConfigError {
            file: source.to_owned(),
            path: path.to_owned(),
            message,
        };
        let raw: file::ConfigFile = toml::from_str(text).map_err(|e| {
            let path = e
                .span()
                .map(|s| format!("line {}", line_of(text, s.start)))
                .unwrap_or_else(|| "(document)".into());
            err(&path, e.message().to_owned())
        })?;

        let mut providers = HashSet::new();
        let mut secrets = BTreeMap::new();
        for (i, p) in raw.providers.iter().enumerate() {
            let at = |key: &str| format!("providers[{i}].{key}");
            if !providers.insert(p.name.as_str()) {
                return Err(err(&at("name"), format!("duplicate provider `{}`", p.name)));
            }
            match p.kind {
                ProviderKind::Simulated => {}
                ProviderKind::Openai | ProviderKind::Anthropic => {
                    let Some(url) = &p.base_url else {
                        return Err(err(&at("base_url"), "required for this kind".into()));
                    };
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(err(
                            &at("base_url"),
                            format!("`{url}` is not an http(s) URL"),
                        ));
                    }
                }
            }
            if let Some(var) = &p.api_key_env {
                match env(var) {
                    Some(key) if !key.is_empty() => {
                        secrets.insert(p.name.clone(), key);
                    }
                    _ => {
                        return Err(err(
                            &at("api_key_env"),
                            format!("environment variable `{var}` is not set"),
                        ));
                    }
                }
            }
        }

        let mut ids = HashSet::new();
        for (i, t) in raw.targets.iter().enumerate() {
            let at = |key: &str| format!("targets[{i}].{key}");
            if t.id.is_empty() || !ids.insert(t.id.as_str()) {
                return Err(err(
                    &at("id"),
                    format!("missing or duplicate target id `{}`", t.id),
                ));
            }
            if !providers.contains(t.provider.as_str()) {
                return Err(err(
                    &at("provider"),
                    format!("no provider named `{}`", t.provider),
                ));
            }
            if !(t.input_price >= 0.0 && t.output_price >= 0.0) {
                return Err(err(
                    &at("input_price"),
                    "prices must be zero or more".into(),
                ));
            }
            if t.first_byte_timeout_ms == 0 || t.connect_timeout_ms == 0 || t.total_timeout_ms == 0
            {
                return Err(err(&at("timeouts"), "timeouts must be above zero".into()));
            }
        }
        if raw.targets.is_empty() {
            return Err(err("targets", "at least one target is required".into()));
        }
        let models: HashSet<&str> = raw.targets.iter().map(|t| t.model.as_str()).collect();
        for (alias, names) in &raw.aliases {
            for name in names {
                if !models.contains(name.as_str()) && !ids.contains(name.as_str()) {
                    return Err(err(
                        &format!("aliases.{alias}"),
                        format!("`{name}` is neither a target model nor a target id"),
                    ));
                }
            }
        }

        let mut tenants = raw.tenants;
        let mut tenant_ids = HashSet::new();
        let mut key_hashes = HashMap::new();
        for (i, t) in tenants.iter_mut().enumerate() {
            let at = |key: &str| format!("tenants[{i}].{key}");
            if t.id.is_empty() || !tenant_ids.insert(t.id.clone()) {
                return Err(err(
                    &at("id"),
                    format!("missing or duplicate tenant id `{}`", t.id),
                ));
            }
            validate_keys(t, i, &mut key_hashes).map_err(|(path, message)| err(&path, message))?;
            for id in t.safe_route.iter().chain(t.targets.iter().flatten()) {
                if !ids.contains(id.as_str()) {
                    return Err(err(&at("safe_route"), format!("no target with id `{id}`")));
                }
            }
            if t.safe_route.is_empty() {
                return Err(err(
                    &at("safe_route"),
                    "name at least one target to use when the policy fails".into(),
                ));
            }
            if let Some(policy) = &t.policy
                && policy != file::EMBEDDED_POLICY
            {
                t.policy = Some(resolve(base, Path::new(policy)).display().to_string());
            }
        }
        if tenants.is_empty() {
            return Err(err("tenants", "at least one tenant is required".into()));
        }

        let mut admin = raw.admin;
        if let Some(listen) = &admin.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(err(
                "admin.listen",
                format!("`{listen}` is not an address:port"),
            ));
        }
        for (i, token) in admin.tokens.iter().enumerate() {
            if crate::tenancy::parse_key_hash(&token.hash).is_none() {
                return Err(err(
                    &format!("admin.tokens[{i}].hash"),
                    "expected `sha256:` followed by the 64 hex digits of the token's SHA-256"
                        .into(),
                ));
            }
            if let Some(t) = &token.tenant
                && !tenant_ids.contains(t)
            {
                return Err(err(
                    &format!("admin.tokens[{i}].tenant"),
                    format!("no tenant with id `{t}`"),
                ));
            }
        }
        if admin.listen.is_some() && admin.tokens.is_empty() {
            return Err(err(
                "admin.tokens",
                "an admin listener needs at least one token".into(),
            ));
        }
        if let Some(tls) = &mut admin.tls {
            tls.cert_file = resolve(base, &tls.cert_file);
            tls.key_file = resolve(base, &tls.key_file);
            crate::server::tls::check(tls).map_err(|e| {
                err(
                    &format!("admin.tls.{}", e.file().config_key()),
                    e.to_string(),
                )
            })?;
        }
        for dir in [&mut admin.state_dir, &mut admin.policies_dir]
            .into_iter()
            .flatten()
        {
            *dir = resolve(base, Path::new(&*dir)).display().to_string();
        }

        let mut ledger = raw.ledger;
        ledger.path = match (&ledger.path, &admin.state_dir) {
            _ if !ledger.enabled => None,
            (Some(path), _) => Some(resolve(base, Path::new(path)).display().to_string()),
            (None, Some(state)) => Some(Path::new(state).join("usage.db").display().to_string()),
            (None, None) => None,
        };

        let mut decision_log = raw.decision_log;
        if let Some(path) = &mut decision_log.path {
            *path = resolve(base, Path::new(path)).display().to_string();
        }

        let mut engine = raw.engine;
        if let Some(dir) = &mut engine.cache_dir {
            *dir = resolve(base, Path::new(dir)).display().to_string();
        }

        let telemetry = validate_telemetry(raw.telemetry, None, OTLP_BUILT_IN)
            .map_err(|(path, message)| err(&path, message))?;

        let mut server = raw.server;
        if server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(err(
                "server.listen",
                format!("`{}` is not an address:port", server.listen),
            ));
        }
        if let Some(tls) = &mut server.tls {
            tls.cert_file = resolve(base, &tls.cert_file);
            tls.key_file = resolve(base, &tls.key_file);
            crate::server::tls::check(tls).map_err(|e| {
                err(
                    &format!("server.tls.{}", e.file().config_key()),
                    e.to_string(),
                )
            })?;
        }
        Ok(Config {
            source: source.to_owned(),
            server,
            engine,
            providers: raw.providers,
            targets: raw.targets,
            aliases: raw.aliases,
            tenants,
            ledger,
            decision_log,
            telemetry,
            admin,
            secrets,
        })
    }
}

/// `path` as written in the config, relative to the config file's directory.
fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// What the hash must look like, in error messages.
const HASH_FORMAT: &str = "expected `sha256:` followed by the 64 hex digits of the key's SHA-256";

/// Checks tenant `i`'s keys and limits: well-formed hashes, each key listed once in the
/// whole file (`seen` maps hashes to where they were first listed), unique plain ids.
/// Errors are `(key path, message)`.
fn validate_keys(
    t: &TenantSection,
    i: usize,
    seen: &mut HashMap<crate::tenancy::KeyHash, String>,
) -> Result<(), (String, String)> {
    let at = |key: &str| format!("tenants[{i}].{key}");
    validate_limits(&t.limits, &|field| at(&format!("limits.{field}")))?;
    let mut ids = HashSet::new();
    let listed = t.key_hashes.iter().enumerate().map(|(k, hash)| {
        let path = at(&format!("key_hashes[{k}]"));
        (path.clone(), path, None, hash)
    });
    let sections = t.keys.iter().enumerate().map(|(k, key)| {
        (
            at(&format!("keys[{k}].hash")),
            at(&format!("keys[{k}].id")),
            Some((k, key)),
            &key.hash,
        )
    });
    for (hash_path, id_path, section, text) in listed.chain(sections) {
        let hash =
            crate::tenancy::parse_key_hash(text).ok_or((hash_path.clone(), HASH_FORMAT.into()))?;
        if let Some(first) = seen.get(&hash) {
            return Err((
                hash_path,
                format!("the same key is already listed at {first}"),
            ));
        }
        seen.insert(hash, hash_path.clone());
        let id = match section {
            Some((k, key)) => {
                if !crate::tenancy::is_valid_key_id(&key.id) {
                    return Err((
                        id_path,
                        format!(
                            "`{}` is not a valid key id: use 1 to 64 letters, digits, `-`, `_` or `.`",
                            key.id
                        ),
                    ));
                }
                validate_limits(&key.limits(), &|field| at(&format!("keys[{k}].{field}")))?;
                key.id.clone()
            }
            None => crate::tenancy::derived_key_id(&hash),
        };
        if !ids.insert(id.clone()) {
            return Err((id_path, format!("duplicate key id `{id}` in this tenant")));
        }
    }
    Ok(())
}

/// A limit, when set, must allow something: `0` would refuse every request, which
/// `disabled = true` says more clearly.
fn validate_limits(
    limits: &LimitsSection,
    path: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
    for (field, value) in [
        ("requests_per_minute", limits.requests_per_minute),
        ("tokens_per_minute", limits.tokens_per_minute),
    ] {
        if value == Some(0) {
            return Err((
                path(field),
                "must be at least 1 (leave it out for no limit)".into(),
            ));
        }
    }
    for (field, value) in [
        ("budget_usd_per_day", limits.budget_usd_per_day),
        ("budget_usd_per_month", limits.budget_usd_per_month),
    ] {
        if value.is_some_and(|usd| !(usd.is_finite() && usd > 0.0)) {
            return Err((
                path(field),
                "must be a positive number of USD (leave it out for no limit)".into(),
            ));
        }
    }
    Ok(())
}

/// Checks `[telemetry]` once the environment's endpoint (`from_env`), if any, has taken
/// the place of the file's. `built_in` says whether this binary can export at all: a
/// file asking for export from a binary that cannot is a mistake worth stopping for.
/// A variable left in the environment for other programs is not, so without the
/// feature it is ignored here (start-up warns about it). Errors are `(key path,
/// message)`; the path is the variable's name when the endpoint came from it.
fn validate_telemetry(
    mut section: TelemetrySection,
    from_env: Option<String>,
    built_in: bool,
) -> Result<TelemetrySection, (String, String)> {
    let mut key = "telemetry.otlp_endpoint".to_owned();
    if !built_in {
        if section.otlp_endpoint.is_some() {
            return Err((
                key,
                "this signalbox was built without OTLP export: rebuild with the `otlp` \
                 cargo feature (`cargo build --features otlp`), or remove the key"
                    .into(),
            ));
        }
    } else if let Some(url) = from_env.filter(|url| !url.trim().is_empty()) {
        section.otlp_endpoint = Some(url);
        key = format!("{OTLP_ENDPOINT_ENV} (environment)");
    }
    if let Some(url) = &section.otlp_endpoint {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| (key.clone(), format!("`{url}` is not a URL: {e}")))?;
        let http_scheme = matches!(uri.scheme_str(), Some("http" | "https"));
        if !http_scheme || uri.authority().is_none() {
            return Err((
                key,
                format!("`{url}` is not an http(s) URL of an OTLP/HTTP receiver"),
            ));
        }
        if uri.query().is_some() {
            return Err((
                key,
                format!("`{url}` has a query; give the receiver's base URL"),
            ));
        }
    }
    if section.service_name.trim().is_empty() {
        return Err(("telemetry.service_name".into(), "must not be empty".into()));
    }
    if !(0.0..=1.0).contains(&section.sample_ratio) {
        return Err((
            "telemetry.sample_ratio".into(),
            format!("{} is not in [0, 1]", section.sample_ratio),
        ));
    }
    Ok(section)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.lines().count().max(1))
}

impl TargetSection {
    /// Connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// Time allowed until the first content arrives.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
    /// Time allowed for the whole response.
    pub fn total_timeout(&self) -> Duration {
        Duration::from_millis(self.total_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/etc/sb"), &|name| {
            (name == "KEY_SET").then(|| "secret".to_owned())
        })
    }

    const MINIMAL: &str = r#"
        [[providers]]
        name = "sim"
        kind = "simulated"

        [[targets]]
        id = "small"
        provider = "sim"
        model = "small-model"

        [[tenants]]
        id = "demo"
        key_hashes = ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
        safe_route = ["small"]
    "#;

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded().unwrap();
        assert!(config.targets.len() >= 2);
        assert_eq!(config.tenants.len(), 1);
    }

    #[test]
    fn the_compile_cache_is_found_beside_the_config_file() {
        let relative = parse(&format!(
            "[engine]\ncache_dir = \"cache/compiled\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(
            relative.engine.cache_dir.as_deref(),
            Some("/etc/sb/cache/compiled")
        );
        let absolute = parse(&format!(
            "[engine]\ncache_dir = \"/var/cache/sb\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(absolute.engine.cache_dir.as_deref(), Some("/var/cache/sb"));
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.targets[0].upstream_model(), "small-model");
    }

    #[test]
    fn errors_name_the_key_path() {
        let bad = MINIMAL.replace("provider = \"sim\"", "provider = \"nope\"");
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.path, "targets[0].provider");
        assert!(
            e.to_string()
                .starts_with("test.toml: targets[0].provider: no provider named `nope`")
        );

        let typo = MINIMAL.replace("model = \"small-model\"", "modle = \"small-model\"");
        let e = parse(&typo).unwrap_err();
        assert!(e.message.contains("unknown field `modle`"), "{e}");

        let secret = MINIMAL.replace(
            "kind = \"simulated\"",
            "kind = \"openai\"\nbase_url = \"https://api.example\"\napi_key_env = \"KEY_UNSET\"",
        );
        let e = parse(&secret).unwrap_err();
        assert_eq!(e.path, "providers[0].api_key_env");
        assert!(e.message.contains("`KEY_UNSET` is not set"));

        let bad_hash = MINIMAL.replace("sha256:0000", "md5:0000");
        assert_eq!(
            parse(&bad_hash).unwrap_err().path,
            "tenants[0].key_hashes[0]"
        );
    }

    fn hash(key: &str) -> String {
        crate::tenancy::format_key_hash(&crate::tenancy::hash_key(key))
    }

    #[test]
    fn keys_and_limits_are_read_with_ids() {
        let text = format!(
            "{MINIMAL}\n[tenants.limits]\nrequests_per_minute = 60\nbudget_usd_per_day = 2.5\n\n[[tenants.keys]]\nid = \"ci\"\nhash = \"{}\"\ntokens_per_minute = 1000\n\n[[tenants.keys]]\nid = \"old\"\nhash = \"{}\"\ndisabled = true\n",
            hash("sb-ci"),
            hash("sb-old")
        );
        let c = parse(&text).unwrap();
        let t = &c.tenants[0];
        assert!(!t.disabled);
        assert_eq!(t.limits.requests_per_minute, Some(60));
        assert_eq!(t.limits.budget_usd_per_day, Some(2.5));
        let keys = t.api_keys();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["00000000", "ci", "old"]);
        assert_eq!(keys[1].limits().tokens_per_minute, Some(1000));
        assert!(keys[2].disabled && !keys[1].disabled);
    }

    #[test]
    fn key_and_limit_errors_name_the_key_path() {
        let with = |extra: &str| parse(&format!("{MINIMAL}\n{extra}")).unwrap_err();
        let e = with("[[tenants.keys]]\nid = \"ci\"\nhash = \"sha256:12\"\n");
        assert_eq!(e.path, "tenants[0].keys[0].hash");
        assert!(e.message.contains("64 hex digits"), "{e}");

        let e = with(&format!(
            "[[tenants.keys]]\nid = \"a b\"\nhash = \"{}\"\n",
            hash("x")
        ));
        assert_eq!(e.path, "tenants[0].keys[0].id");

        let e = with(&format!(
            "[[tenants.keys]]\nid = \"00000000\"\nhash = \"{}\"\n",
            hash("x")
        ));
        assert_eq!(e.path, "tenants[0].keys[0].id");
        assert!(e.message.contains("duplicate key id `00000000`"), "{e}");

        let zeros = format!("sha256:{}", "0".repeat(64));
        let e = with(&format!(
            "[[tenants.keys]]\nid = \"again\"\nhash = \"{zeros}\"\n"
        ));
        assert_eq!(e.path, "tenants[0].keys[0].hash");
        assert!(
            e.message
                .contains("already listed at tenants[0].key_hashes[0]"),
            "{e}"
        );

        let e = with("[tenants.limits]\nrequests_per_minute = 0\n");
        assert_eq!(e.path, "tenants[0].limits.requests_per_minute");
        let e = with(&format!(
            "[[tenants.keys]]\nid = \"k\"\nhash = \"{}\"\nbudget_usd_per_month = -1.0\n",
            hash("x")
        ));
        assert_eq!(e.path, "tenants[0].keys[0].budget_usd_per_month");
        let e = with("[tenants.limits]\nrequests_per_hour = 5\n");
        assert!(
            e.message.contains("unknown field `requests_per_hour`"),
            "{e}"
        );
    }

    #[test]
    fn telemetry_is_off_unless_an_endpoint_is_named() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, None);
        assert_eq!(c.telemetry.traces_url(), None);
        assert_eq!(c.telemetry.service_name, "signalbox");
        assert_eq!(c.telemetry.sample_ratio, 1.0);
    }

    fn telemetry(
        text: &str,
        from_env: Option<&str>,
        built_in: bool,
    ) -> Result<TelemetrySection, (String, String)> {
        let section: TelemetrySection = toml::from_str(text).unwrap();
        validate_telemetry(section, from_env.map(str::to_owned), built_in)
    }

    #[test]
    fn an_endpoint_without_the_otlp_feature_stops_start_up() {
        let (path, message) =
            telemetry("otlp_endpoint = \"http://127.0.0.1:4318\"", None, false).unwrap_err();
        assert_eq!(path, "telemetry.otlp_endpoint");
        assert!(message.contains("`otlp` cargo feature"), "{message}");
        assert!(message.contains("cargo build --features otlp"), "{message}");
        // A variable set for other programs does not stop a binary that cannot export.
        let section = telemetry("", Some("http://127.0.0.1:4318"), false).unwrap();
        assert_eq!(section.otlp_endpoint, None);
    }

    #[test]
    fn the_environment_endpoint_takes_the_files_place() {
        let text = "otlp_endpoint = \"http://file:4318\"\nservice_name = \"edge\"";
        let section = telemetry(text, Some("http://env:4318/"), true).unwrap();
        assert_eq!(
            section.traces_url().as_deref(),
            Some("http://env:4318/v1/traces")
        );
        assert_eq!(section.service_name, "edge");
        let section = telemetry(text, Some(""), true).unwrap();
        assert_eq!(
            section.traces_url().as_deref(),
            Some("http://file:4318/v1/traces")
        );
        let section = telemetry("", Some("https://c.example/v1/traces"), true).unwrap();
        assert_eq!(
            section.traces_url().as_deref(),
            Some("https://c.example/v1/traces")
        );
    }

    #[test]
    fn bad_telemetry_values_name_the_key_path() {
        let path = |text: &str, env: Option<&str>| telemetry(text, env, true).unwrap_err().0;
        assert_eq!(
            path("otlp_endpoint = \"127.0.0.1:4318\"", None),
            "telemetry.otlp_endpoint"
        );
        assert_eq!(
            path("otlp_endpoint = \"grpc://c:4317\"", None),
            "telemetry.otlp_endpoint"
        );
        assert_eq!(
            path("", Some("not a url")),
            "OTEL_EXPORTER_OTLP_ENDPOINT (environment)"
        );
        assert_eq!(path("sample_ratio = 1.5", None), "telemetry.sample_ratio");
        assert_eq!(path("sample_ratio = nan", None), "telemetry.sample_ratio");
        assert_eq!(path("service_name = \" \"", None), "telemetry.service_name");
        // Through the whole file, with the file name and path in the message.
        let e = parse(&format!("{MINIMAL}\n[telemetry]\nsample_ratio = -0.1\n")).unwrap_err();
        assert_eq!(e.path, "telemetry.sample_ratio");
        let e = parse(&format!("{MINIMAL}\n[telemetry]\nendpoint = \"x\"\n")).unwrap_err();
        assert!(e.message.contains("unknown field `endpoint`"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let with_key = MINIMAL.replace(
            "kind = \"simulated\"",
            "kind = \"openai\"\nbase_url = \"https://api.example\"\napi_key_env = \"KEY_SET\"",
        );
        let c = parse(&with_key).unwrap();
        assert_eq!(c.secrets.get("sim").map(String::as_str), Some("secret"));
    }
}
