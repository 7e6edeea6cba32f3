//! The gateway's configuration: one TOML file, read once at start-up.
//!
//! The file is parsed into plain serde structs (`sections`,
//! `deny_unknown_fields`, so a typo is an error, not a silently ignored key), checked
//! (`validate`, `keys`, `telemetry`), and its relative paths resolved against the
//! file's directory (`paths`). Every error names the file, the key path (see
//! [`KeyPath`] for the notation), the line and column, and what is wrong (`error`,
//! `location`). Secrets never appear in the file: a provider names the environment
//! variable that holds its API key.
//!
//! A config is a description only: reading it opens no file but itself. The files it
//! names (policies, certificates, state) are opened by whoever uses them, and their
//! errors name the config key that pointed there.

mod cluster;
mod error;
mod keys;
mod location;
mod paths;
mod sections;
mod server;
mod telemetry;
mod validate;

pub use cluster::{ClusterSection, Credentials, FailMode, StoreTls};
pub use error::ConfigError;
pub use location::{KeyPath, Location};
pub use sections::{
    AdminSection, AdminTokenSection, AliasMap, DecisionLogSection, EngineSection, KeySection,
    LedgerSection, LimitsSection, ProviderKind, ProviderSection, ReviewStreams, ServerSection,
    SimulatedSection, TargetSection, TelemetrySection, TenantSection, TlsSection,
};

use location::Document;
use std::collections::BTreeMap;
use std::path::Path;
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
    pub secrets: Secrets,
    /// The fleet's shared store, when the gateway runs as one of several replicas.
    pub cluster: Option<ClusterSection>,
}

/// Provider API keys by provider name. `Debug` shows the names only, so a config
/// printed for debugging never carries a key.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    /// The API key of `provider`, if it has one.
    pub fn get(&self, provider: &str) -> Option<&str> {
        self.0.get(provider).map(String::as_str)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<redacted>")))
            .finish()
    }
}

impl Config {
    /// Reads and validates `path`, taking secrets from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(&source, &e))?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let mut config = Config::parse(&text, &source, &base, &|name| std::env::var(name).ok())?;
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
        self.telemetry =
            telemetry::validate_telemetry(self.telemetry.clone(), Some(url), OTLP_BUILT_IN)
                .map_err(|invalid| ConfigError::elsewhere(&self.source, invalid))?;
        Ok(())
    }

    /// Parses and validates TOML `text` read from `source`; relative paths resolve
    /// against `base`; `env` looks up secrets. No file is read: the TLS files, for
    /// one, are read when TLS starts.
    pub fn parse(
        text: &str,
        source: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let document = Document::parse(text).map_err(|e| ConfigError::syntax(source, text, &e))?;
        let mut raw: sections::ConfigFile = document
            .deserialize()
            .map_err(|e| ConfigError::shape(source, &document, &e))?;
        let validated = validate::validate(&raw, env)
            .map_err(|invalid| ConfigError::invalid(source, &document, invalid))?;
        paths::resolve_paths(&mut raw, base);
        Ok(Config {
            source: source.to_owned(),
            server: raw.server,
            engine: raw.engine,
            providers: raw.providers,
            targets: raw.targets,
            aliases: raw.aliases,
            tenants: raw.tenants,
            admin: raw.admin,
            ledger: LedgerSection {
                credentials: validated.ledger_credentials,
                ..raw.ledger
            },
            decision_log: raw.decision_log,
            telemetry: validated.telemetry,
            secrets: Secrets(validated.secrets),
            cluster: raw.cluster.map(|cluster| ClusterSection {
                credentials: validated.cluster_credentials,
                ..cluster
            }),
        })
    }
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
    /// Longest silence allowed inside a stream once its content has begun.
    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.stream_idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests;
