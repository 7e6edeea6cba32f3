//! The config file's shape, as plain serde structs.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Alias → the models (or target ids) it stands for.
pub type AliasMap = BTreeMap<String, Vec<String>>;

/// The policy value meaning "the policy compiled into the binary".
pub(crate) const EMBEDDED_POLICY: &str = "embedded:default";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub providers: Vec<ProviderSection>,
    #[serde(default)]
    pub targets: Vec<TargetSection>,
    #[serde(default)]
    pub aliases: AliasMap,
    #[serde(default)]
    pub tenants: Vec<TenantSection>,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub ledger: LedgerSection,
    #[serde(default)]
    pub decision_log: DecisionLogSection,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    #[serde(default)]
    pub cluster: Option<super::cluster::ClusterSection>,
}

/// `[server]`: the listener and request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// How long a shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
    /// Most targets tried for one request.
    pub max_attempts: usize,
    /// Consecutive failures that open a target's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open circuit waits before a probe, in milliseconds.
    pub breaker_cool_down_ms: u64,
    /// Retries a failing target may send on, per request first sent to it (over ten
    /// seconds).
    pub retry_budget_ratio: f64,
    /// Retries a failing target may send on per second whatever its traffic.
    pub retry_budget_min_per_second: u32,
    /// How many of the most recent requests can still receive feedback.
    pub feedback_window: usize,
    /// How long after a request its feedback is accepted, in seconds.
    pub feedback_ttl_secs: u64,
    /// How long a client may take to send a request's headers, in milliseconds
    /// (HTTP/1; hyper also applies it to the wait for the next request on a kept-alive
    /// connection). The connection is closed when it runs out.
    pub header_read_timeout_ms: u64,
    /// How long a client may take to send a request's whole body once it is read, in
    /// milliseconds (408 when it runs out).
    pub body_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed, in
    /// milliseconds (HTTP/2 with a GOAWAY; HTTP/1 idles at most the header timeout).
    pub idle_timeout_ms: u64,
    /// Most header fields in one request (HTTP/1; 431 above).
    pub max_header_count: usize,
    /// Largest request head (request line and headers) in bytes: HTTP/1's read buffer
    /// (431 or 414 above) and HTTP/2's header list size. At least 8192.
    pub max_header_bytes: usize,
    /// Most open client connections per listener; one more is answered a bare 503
    /// and closed.
    pub max_connections: usize,
    /// Connections the kernel queues for each listener before it accepts them (the
    /// kernel caps it at `net.core.somaxconn`). A burst of connects beyond it loses
    /// SYNs, which clients resend only after a second.
    pub listen_backlog: u32,
    /// Most requests in flight per listener (streams count until they end); one more
    /// is answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// The `Retry-After` of a request or connection shed for overload, in seconds.
    pub overload_retry_after_secs: u64,
    /// HTTP/2: most concurrent streams per connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: most streams a client may reset before the gateway accepted them, per
    /// connection (rapid reset, CVE-2023-44487); more ends the connection.
    pub http2_max_pending_accept_reset_streams: usize,
    /// HTTP/2: most streams the gateway may reset for a client's protocol errors, per
    /// connection; more ends the connection.
    pub http2_max_local_error_reset_streams: usize,
    /// HTTP/2: most control frames (SETTINGS, PING, RST_STREAM, PRIORITY, empty
    /// WINDOW_UPDATE) a client may send per second, per connection, with as many
    /// again in a burst; more ends the connection.
    pub http2_max_control_frames_per_sec: u32,
    /// HTTP/2: how often to PING an idle connection, in seconds (0: never).
    pub http2_keep_alive_interval_secs: u64,
    /// HTTP/2: how long a PING may go unanswered before the connection is closed, in
    /// seconds.
    pub http2_keep_alive_timeout_secs: u64,
    /// A Unix socket through which a replacement gateway (`signalbox serve
    /// --take-over`) takes this one's listening sockets, so a binary or config change
    /// refuses no connection (Unix only; none: no hand-over).
    pub handover_socket: Option<String>,
    /// `[server.tls]`: when present, the listener serves HTTPS only.
    pub tls: Option<TlsSection>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 4 << 20,
            shutdown_grace_secs: 30,
            max_attempts: 3,
            breaker_failures: 5,
            breaker_cool_down_ms: 10_000,
            retry_budget_ratio: crate::signals::RetryBudgetConfig::default().ratio,
            retry_budget_min_per_second: crate::signals::RetryBudgetConfig::default()
                .min_per_second,
            feedback_window: 100_000,
            feedback_ttl_secs: 3_600,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            max_header_count: 100,
            max_header_bytes: 64 << 10,
            max_connections: 10_000,
            listen_backlog: 4_096,
            max_in_flight: 4_096,
            overload_retry_after_secs: 1,
            http2_max_concurrent_streams: 100,
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: 1_024,
            http2_max_control_frames_per_sec: 100,
            http2_keep_alive_interval_secs: 20,
            http2_keep_alive_timeout_secs: 20,
            handover_socket: None,
            tls: None,
        }
    }
}

/// `[server.tls]`: the certificate a listener serves. Both files are watched: replacing
/// them (in place, by `mv`, or by a symlink swap) reloads the certificate for new
/// connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first. Relative paths are resolved
    /// against the config file's directory.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_file: PathBuf,
    /// Where this section sits in the config (`server.tls`, `admin.tls`), so that a
    /// problem found when the files are read names the key that points at them. Set
    /// when the config is read; not a key of the file.
    #[serde(skip)]
    pub config_key: &'static str,
}

/// `[engine]`: the policy engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Deadline of one policy call, in milliseconds.
    pub deadline_ms: u64,
    /// Memory cap of one policy instance, in MiB.
    pub memory_limit_mib: usize,
    /// Directory for compiled policies (none: no cache). Relative to the config file.
    pub cache_dir: Option<String>,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            deadline_ms: 2,
            memory_limit_mib: 32,
            cache_dir: None,
        }
    }
}

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, Groq…).
    Openai,
    /// OpenAI's Responses API (`{base_url}/responses`): Responses clients pass through
    /// byte for byte; clients of other APIs are not translated to it yet, so such a
    /// target serves only Responses requests.
    #[serde(rename = "openai-responses")]
    OpenaiResponses,
    /// Anthropic's Messages API.
    Anthropic,
    /// Azure OpenAI: the OpenAI API at a resource's own URLs, authenticated by an
    /// `api-key` or a Microsoft Entra bearer token.
    Azure,
    /// In-process simulated model, for demos and load tests.
    Simulated,
}

/// `[[providers]]`: an upstream API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// Unique name, referred to by targets.
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// Base URL including the version prefix, e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// Environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Azure only: the `api-version` of deployment URLs
    /// (`{base_url}/openai/deployments/{upstream_model}/…`); without it, Azure's v1 API
    /// (`{base_url}/openai/v1/…`, the model in the body).
    pub api_version: Option<String>,
    /// Azure only: environment variable holding a Microsoft Entra access token, sent
    /// as `Authorization: Bearer` (instead of `api_key_env`'s `api-key`).
    pub entra_token_env: Option<String>,
    /// Simulated providers only: how they behave.
    #[serde(default)]
    pub simulated: SimulatedSection,
}

/// How a simulated provider behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedSection {
    /// Time to first token, in milliseconds.
    pub latency_ms: u64,
    /// Output speed.
    pub tokens_per_second: u32,
    /// Share of requests that fail with 500, in `[0, 1]`.
    pub error_rate: f64,
}

impl Default for SimulatedSection {
    fn default() -> Self {
        SimulatedSection {
            latency_ms: 50,
            tokens_per_second: 200,
            error_rate: 0.0,
        }
    }
}

/// `[[targets]]`: one model at one provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// Unique id, e.g. `openai-gpt-4o-mini`.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// The model name clients ask for.
    pub model: String,
    /// The model name sent upstream (default: `model`).
    pub upstream_model: Option<String>,
    /// USD per 1M input tokens.
    #[serde(default)]
    pub input_price: f64,
    /// USD per 1M output tokens (reasoning tokens are output).
    #[serde(default)]
    pub output_price: f64,
    /// USD per 1M input tokens read from the provider's prompt cache (default: the
    /// input price).
    pub cache_read_price: Option<f64>,
    /// USD per 1M input tokens written to the provider's prompt cache (default: the
    /// input price).
    pub cache_write_price: Option<f64>,
    /// Context window in tokens (0: unknown).
    #[serde(default)]
    pub context_window: u32,
    /// Capability tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Connect timeout, ms.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Time to first content, ms.
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_timeout_ms: u64,
    /// Whole response, ms.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
    /// Longest silence inside a stream once its content has begun, ms.
    #[serde(default = "default_stream_idle_ms")]
    pub stream_idle_timeout_ms: u64,
    /// Most concurrent requests (0: no limit).
    #[serde(default)]
    pub max_in_flight: u32,
    /// The target returns token log-probabilities when asked (OpenAI's `logprobs`):
    /// the gateway asks for them when the tenant's policy reviews answers and the
    /// client did not set `logprobs` itself (the client then receives them too).
    #[serde(default)]
    pub logprobs: bool,
}

impl TargetSection {
    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.model)
    }

    /// The target's prices, the cache's defaulting to the input price.
    pub fn prices(&self) -> crate::usage::Prices {
        crate::usage::Prices {
            input: self.input_price,
            output: self.output_price,
            cache_read: self.cache_read_price.unwrap_or(self.input_price),
            cache_write: self.cache_write_price.unwrap_or(self.input_price),
        }
    }
}

fn default_connect_ms() -> u64 {
    2_000
}
fn default_first_byte_ms() -> u64 {
    30_000
}
fn default_total_ms() -> u64 {
    600_000
}
fn default_stream_idle_ms() -> u64 {
    60_000
}

/// `[[tenants]]`: a team sharing the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    /// Unique id.
    pub id: String,
    /// A disabled tenant's keys are refused with 403.
    #[serde(default)]
    pub disabled: bool,
    /// API key hashes (`sha256:<hex>`), never keys. Each is a key with no limits of its
    /// own, whose id is the first 8 hex digits of its hash.
    #[serde(default)]
    pub key_hashes: Vec<String>,
    /// `[[tenants.keys]]`: API keys with ids, limits, and a switch to disable them.
    #[serde(default)]
    pub keys: Vec<KeySection>,
    /// `[tenants.limits]`: what all the tenant's keys may use together.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Policy component path, or `embedded:default` (the default).
    pub policy: Option<String>,
    /// The policy's JSON config, written as TOML (default: `{"aliases": <aliases>}` for
    /// the embedded policy, `{}` otherwise).
    pub policy_config: Option<toml::Table>,
    /// Targets tried in order when the policy fails.
    #[serde(default)]
    pub safe_route: Vec<String>,
    /// Target ids this tenant may use (default: all).
    pub targets: Option<Vec<String>>,
    /// Put the messages' text in the decision log (default: sizes and tags only).
    #[serde(default)]
    pub log_message_text: bool,
    /// The most one request may spend, in USD, on the answers its policy's `review`
    /// refuses (escalations) and the verifiers it asks: once the request has spent
    /// this much, the answer in hand is sent (default: no cap; the attempt limit,
    /// `server.max_attempts`, still bounds a cascade).
    pub max_request_usd: Option<f64>,
    /// Whether a policy that reviews answers sees streamed ones: `"off"` (the default:
    /// streams go to the client unreviewed), `"hold"` (the whole answer is held back
    /// until it is complete, then reviewed; the client's first token waits for the
    /// last) or `{ first_tokens = N }` (held until N content chunks have arrived, then
    /// reviewed; once sent on, it can no longer be escalated).
    #[serde(default)]
    pub review_streams: ReviewStreams,
}

/// How much of a streamed answer is held back for the policy's review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStreams {
    /// Streams are not reviewed.
    #[default]
    Off,
    /// The whole answer, reviewed complete.
    Hold,
    /// Its first content chunks (about one token each), reviewed as an early check.
    FirstTokens(u32),
}

/// `[admin]`: the admin API and where policy versions are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Address of the admin listener (none: no admin API).
    pub listen: Option<String>,
    /// Serve the admin API over HTTPS with this certificate (reloaded on change).
    pub tls: Option<TlsSection>,
    /// Directory of uploaded versions and active bindings (none: kept in memory, lost
    /// at exit). Relative to the config file.
    pub state_dir: Option<String>,
    /// Watched directory of `<tenant>/policy.wasm` + `config.json` (none: not
    /// watched). Relative to the config file.
    pub policies_dir: Option<String>,
    /// Failed policy calls in a row (traps, deadlines) that quarantine a version.
    pub quarantine_after: u32,
    /// How often policies' learned state is saved to `state_dir`, in seconds (also at
    /// shutdown).
    pub state_snapshot_secs: u64,
    /// Who may call the admin API.
    pub tokens: Vec<AdminTokenSection>,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: None,
            tls: None,
            state_dir: None,
            policies_dir: None,
            quarantine_after: 5,
            state_snapshot_secs: 10,
            tokens: Vec::new(),
        }
    }
}

/// `[[admin.tokens]]`: an admin token, by hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenSection {
    /// `sha256:<hex>` of the token, never the token.
    pub hash: String,
    /// The one tenant it may act on; none for an operator token (every tenant).
    pub tenant: Option<String>,
}

/// `[ledger]`: the usage ledger: a SQLite file by default, or a fleet's PostgreSQL
/// database (`url`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// Record usage at all.
    pub enabled: bool,
    /// The database file (default: `usage.db` in `admin.state_dir`; with neither,
    /// no ledger). Relative to the config file.
    pub path: Option<String>,
    /// `postgres://user@host:port/database`: the fleet's ledger in PostgreSQL instead
    /// of a file (every replica writes there, and reads the fleet's rows). No password
    /// in it: name its variable in `password_env`.
    pub url: Option<String>,
    /// The environment variable holding PostgreSQL's password.
    pub password_env: Option<String>,
    /// `[ledger.tls]`: the authority to trust and a client certificate, for a `url`
    /// with `sslmode=require`.
    pub tls: Option<super::cluster::StoreTls>,
    /// Rows kept in memory while the database cannot be written (it is down, or
    /// slower than the traffic); past this, rows are dropped, counted and logged.
    pub max_spill_rows: usize,
    /// The password, read from the environment at load.
    #[serde(skip)]
    pub credentials: super::cluster::Credentials,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            enabled: true,
            path: None,
            url: None,
            password_env: None,
            tls: None,
            max_spill_rows: 1_000_000,
            credentials: super::cluster::Credentials::default(),
        }
    }
}

/// `[decision_log]`: a JSONL line per routed request, for replay and debugging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionLogSection {
    /// The file to append to (none: no decision log). Relative to the config file.
    pub path: Option<String>,
    /// Size at which the file is rotated: a line that would take it past this
    /// starts a new file, and the full one becomes `<path>.1` (0: never rotate).
    pub max_bytes: u64,
    /// Rotated files kept (`<path>.1` newest … `<path>.<max_files>` oldest); older
    /// ones are deleted.
    pub max_files: u32,
}

impl Default for DecisionLogSection {
    fn default() -> Self {
        DecisionLogSection {
            path: None,
            max_bytes: 100 << 20,
            max_files: 5,
        }
    }
}

/// `[telemetry]`: exporting the request, policy-call and upstream-attempt spans to an
/// OpenTelemetry collector over OTLP/HTTP. Export needs a binary built with the `otlp`
/// cargo feature; logs on stderr need nothing here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g. `http://127.0.0.1:4318`;
    /// spans are posted to `<otlp_endpoint>/v1/traces` (none: no export). The standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` environment variable, when set, takes its place.
    pub otlp_endpoint: Option<String>,
    /// The exported spans' `service.name`.
    pub service_name: String,
    /// Share of requests whose spans are exported, in `[0, 1]`.
    pub sample_ratio: f64,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_endpoint: None,
            service_name: "signalbox".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetrySection {
    /// Where spans are posted: the OTLP/HTTP traces path under `otlp_endpoint`.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint.as_deref().map(|base| {
            let base = base.trim_end_matches('/');
            if base.ends_with("/v1/traces") {
                base.to_owned()
            } else {
                format!("{base}/v1/traces")
            }
        })
    }
}

impl TenantSection {
    /// Every key of the tenant as a [`KeySection`]: `key_hashes` first (with derived
    /// ids and no limits), then `keys`. A key's position here is its index everywhere.
    pub fn api_keys(&self) -> Vec<KeySection> {
        let listed = self.key_hashes.iter().map(|hash| KeySection {
            id: crate::tenancy::parse_key_hash(hash)
                .map(|h| crate::tenancy::derived_key_id(&h))
                .unwrap_or_default(),
            hash: hash.clone(),
            disabled: false,
            requests_per_minute: None,
            tokens_per_minute: None,
            budget_usd_per_day: None,
            budget_usd_per_month: None,
        });
        listed.chain(self.keys.iter().cloned()).collect()
    }
}

/// `[[tenants.keys]]`: one API key of a tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    /// Names the key in logs and errors; unique within the tenant.
    pub id: String,
    /// `sha256:<64 hex digits>` of the key (`signalbox keys new` prints it).
    pub hash: String,
    /// A disabled key is refused with 403.
    #[serde(default)]
    pub disabled: bool,
    /// Requests per minute for this key alone.
    pub requests_per_minute: Option<u32>,
    /// Tokens (input + output) per minute for this key alone.
    pub tokens_per_minute: Option<u32>,
    /// USD this key may spend per UTC day.
    pub budget_usd_per_day: Option<f64>,
    /// USD this key may spend per UTC calendar month.
    pub budget_usd_per_month: Option<f64>,
}

impl KeySection {
    /// The key's own limits.
    pub fn limits(&self) -> LimitsSection {
        LimitsSection {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            budget_usd_per_day: self.budget_usd_per_day,
            budget_usd_per_month: self.budget_usd_per_month,
            max_in_flight: None,
        }
    }
}

/// Quotas of a tenant (`[tenants.limits]`) or of one key; absent means no limit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens (input + output) per minute.
    pub tokens_per_minute: Option<u32>,
    /// USD per UTC day, at the targets' configured prices.
    pub budget_usd_per_day: Option<f64>,
    /// USD per UTC calendar month, at the targets' configured prices.
    pub budget_usd_per_month: Option<f64>,
    /// Requests in flight at once (streams until they end), tenant-wide only; one
    /// more is answered 429 with `Retry-After`.
    pub max_in_flight: Option<u32>,
}

impl LimitsSection {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == LimitsSection::default()
    }
}
