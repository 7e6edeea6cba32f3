//! The assembled gateway: everything a request needs, built once from the config.

use crate::config::{Config, ProviderSection};
use crate::decision_log::DecisionLog;
use crate::deploy::{Deployer, PolicyStore, Source, TenantPolicy};
use crate::feedback::RecentDecisions;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, Name};
use crate::policy::{EngineConfig, PolicyEngine, TargetInfo, TenantContext};
use crate::provider::Upstream;
use crate::quota::{Quota, Scope};
use crate::signals::{BreakerConfig, RetryBudgetConfig, SignalBoard};
use crate::tenancy::{Caller, Disabled, KeyRing, parse_key_hash};
use crate::usage::Usage;
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One configured target: its settings, its upstream, its index on the signal board.
pub struct Target {
    /// The config entry.
    pub config: crate::config::TargetSection,
    /// How to reach it.
    pub upstream: Upstream,
    /// Its id as a metrics label.
    pub name: Name,
}

impl Target {
    /// What `usage` costs on this target, in US dollars (the cache's tokens at its
    /// prices, reasoning as output).
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        self.config.prices().cost_usd(usage)
    }
}

/// A tenant: its targets (indices into [`Gateway::targets`], in the order its policy
/// sees them), its policy state and its safe route.
pub struct Tenant {
    /// The tenant id.
    pub id: Arc<str>,
    /// Global target indices, in policy order.
    pub targets: Vec<usize>,
    /// The active binding (hot-swappable), its history and candidates.
    pub policy: TenantPolicy,
    /// Positions in `targets` to try when the policy fails.
    pub safe_route: Vec<u32>,
    /// Whether the decision log may hold this tenant's message text.
    pub log_message_text: bool,
    /// The most one request may spend on a cascade's refused answers and verifiers.
    pub max_request_usd: Option<f64>,
    /// How much of a streamed answer a reviewing policy sees before the client.
    pub review_streams: crate::config::ReviewStreams,
    /// What all the tenant's keys may use together.
    pub quota: Arc<Quota>,
    /// Each key's own quota, by [`Caller::key_index`](crate::tenancy::Caller).
    pub key_quotas: Vec<Arc<Quota>>,
    /// Slots for the tenant's requests in flight (`[tenants.limits] max_in_flight`),
    /// when limited.
    pub in_flight: Option<Arc<tokio::sync::Semaphore>>,
}

impl Tenant {
    /// The tenant id as a metrics label.
    pub fn name(&self) -> Name {
        Name(self.id.clone())
    }
}

/// Everything the request path reads. Immutable after start-up, except the signals
/// and each tenant's policy state.
pub struct Gateway {
    /// The configuration it was built from.
    pub config: Config,
    /// All targets, in configuration order.
    pub targets: Vec<Target>,
    /// Tenants by id.
    pub tenants: HashMap<Arc<str>, Arc<Tenant>>,
    /// API key hashes → tenants and key ids.
    pub keys: KeyRing,
    /// Live target signals.
    pub signals: Arc<SignalBoard>,
    /// The policy engine, the version store and the lifecycle settings.
    pub deployer: Deployer,
    /// Recent decisions, for feedback to reach the policy that made them.
    pub decisions: RecentDecisions,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The usage ledger, when configured.
    pub ledger: Option<Ledger>,
    /// The decision log, when configured.
    pub decision_log: Option<DecisionLog>,
    /// The fleet's shared store, when the gateway is one of several replicas.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Gateway {
    /// The target at `position` in `tenant`'s policy order.
    pub fn target_of(&self, tenant: &Tenant, position: u32) -> Option<&Target> {
        tenant
            .targets
            .get(position as usize)
            .and_then(|&g| self.targets.get(g))
    }

    /// Builds the gateway: starts the engine, loads and activates every tenant's policy
    /// (a policy that fails to load or rejects its config fails start-up, naming the
    /// tenant), and opens a connection pool per target.
    pub fn build(config: Config) -> anyhow::Result<Gateway> {
        let state_dir = config.admin.state_dir.as_ref().map(PathBuf::from);
        // With a state directory, compiled versions are cached beside it, so that a
        // restart brings every tenant back without compiling.
        let cache_dir = config
            .engine
            .cache_dir
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| state_dir.as_ref().map(|d| d.join("compiled")));
        let engine = PolicyEngine::new(EngineConfig {
            deadline: Duration::from_millis(config.engine.deadline_ms.max(1)),
            memory_limit: config.engine.memory_limit_mib.max(1) << 20,
            cache_dir,
            ..EngineConfig::default()
        })?;
        let metrics = Arc::new(Metrics::new());
        // Connects on first use: a replica starts (on its failure mode) while Redis
        // is down.
        let cluster = match &config.cluster {
            Some(section) => Some(Arc::new(crate::cluster::Cluster::new(
                section,
                metrics.clone(),
            )?)),
            None => None,
        };
        let deployer = Deployer {
            engine,
            store: PolicyStore::open(state_dir.as_deref())?,
            quarantine_after: config.admin.quarantine_after,
            metrics: metrics.clone(),
            fleet: cluster.clone(),
        };

        let providers: HashMap<&str, &ProviderSection> = config
            .providers
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect();
        let mut targets = Vec::with_capacity(config.targets.len());
        for t in &config.targets {
            let provider = providers
                .get(t.provider.as_str())
                .with_context(|| format!("target `{}`: no provider `{}`", t.id, t.provider))?;
            let secret = config.secrets.get(&t.provider);
            let upstream =
                Upstream::new(provider, t, secret).with_context(|| format!("target `{}`", t.id))?;
            targets.push(Target {
                config: t.clone(),
                upstream,
                name: Name::from(t.id.as_str()),
            });
        }
        let index_of: HashMap<&str, usize> = config
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();

        let mut keys = KeyRing::default();
        let mut tenants = HashMap::new();
        for t in &config.tenants {
            let id: Arc<str> = t.id.as_str().into();
            let mut key_quotas = Vec::new();
            for (key_index, key) in t.api_keys().iter().enumerate() {
                let hash = parse_key_hash(&key.hash)
                    .with_context(|| format!("tenant `{}`: key `{}`: bad hash", t.id, key.id))?;
                let key_id: Arc<str> = key.id.as_str().into();
                let disabled = if t.disabled {
                    Some(Disabled::Tenant(id.clone()))
                } else if key.disabled {
                    Some(Disabled::Key(key_id.clone()))
                } else {
                    None
                };
                key_quotas.push(Arc::new(Quota::new(
                    Scope::Key(key_id.clone()),
                    &key.limits(),
                )));
                let caller = Caller {
                    tenant: id.clone(),
                    key_id,
                    key_index,
                };
                if !keys.insert(hash, caller, disabled) {
                    anyhow::bail!("tenant `{}`: key `{}` is listed twice", t.id, key.id);
                }
            }
            let indices: Vec<usize> = match &t.targets {
                Some(list) => list
                    .iter()
                    .filter_map(|x| index_of.get(x.as_str()).copied())
                    .collect(),
                None => (0..config.targets.len()).collect(),
            };
            let infos: Vec<TargetInfo> = indices
                .iter()
                .map(|&i| target_info(&config.targets[i]))
                .collect();
            let (bytes, name) = match t.policy.as_deref() {
                None | Some("embedded:default") => (
                    crate::embedded::DEFAULT_POLICY.to_vec(),
                    "default".to_owned(),
                ),
                Some(path) => (
                    std::fs::read(path)
                        .with_context(|| format!("tenant `{}`: cannot read policy {path}", t.id))?,
                    std::path::Path::new(path)
                        .file_stem()
                        .map_or_else(|| "policy".to_owned(), |s| s.to_string_lossy().into_owned()),
                ),
            };
            let policy_config = match &t.policy_config {
                Some(table) => serde_json::to_string(table)?,
                None if t.policy.as_deref().is_none_or(|p| p == "embedded:default") => {
                    serde_json::json!({ "aliases": config.aliases }).to_string()
                }
                None => "{}".to_owned(),
            };
            let state = crate::deploy::restore_state(&deployer.store, &id)
                .with_context(|| format!("tenant `{}`: restoring its policy state", t.id))?;
            let policy = TenantPolicy::start(
                &deployer,
                TenantContext::with_state(id.clone(), state),
                infos,
                Source {
                    name: &name,
                    bytes: &bytes,
                    config: &policy_config,
                },
            )
            .with_context(|| format!("tenant `{}`: starting its policy", t.id))?;
            let safe_route = t
                .safe_route
                .iter()
                .filter_map(|x| index_of.get(x.as_str()))
                .filter_map(|g| indices.iter().position(|i| i == g))
                .map(|p| p as u32)
                .collect();
            let tenant_quota = Arc::new(Quota::new(Scope::Tenant(id.clone()), &t.limits));
            tenants.insert(
                id.clone(),
                Arc::new(Tenant {
                    id,
                    targets: indices,
                    policy,
                    safe_route,
                    log_message_text: t.log_message_text,
                    max_request_usd: t.max_request_usd,
                    review_streams: t.review_streams,
                    quota: tenant_quota,
                    key_quotas,
                    in_flight: t
                        .limits
                        .max_in_flight
                        .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
                }),
            );
        }

        let capacities: Vec<u32> = config.targets.iter().map(|t| t.max_in_flight).collect();
        let ledger = match (&config.ledger.url, &config.ledger.path) {
            (Some(url), _) => Some(Ledger::open_postgres(
                url,
                config.ledger.credentials.password.as_deref(),
                config.ledger.tls.as_ref(),
                config.ledger.max_spill_rows,
            )?),
            (None, Some(path)) => Some(Ledger::open(
                std::path::Path::new(path),
                config.ledger.max_spill_rows,
            )?),
            (None, None) => None,
        };
        if let Some(ledger) = &ledger {
            restore_spend(ledger, &config, &tenants);
        }
        let decision_log = match &config.decision_log.path {
            Some(path) => Some(
                DecisionLog::open(
                    std::path::Path::new(path),
                    crate::decision_log::Rotation {
                        max_bytes: config.decision_log.max_bytes,
                        max_files: config.decision_log.max_files,
                    },
                )
                .with_context(|| format!("decision log {path}"))?,
            ),
            None => None,
        };
        let decisions = RecentDecisions::new(
            config.server.feedback_window,
            Duration::from_secs(config.server.feedback_ttl_secs),
        );
        Ok(Gateway {
            signals: Arc::new(SignalBoard::new(
                &capacities,
                BreakerConfig {
                    failures_to_open: config.server.breaker_failures.max(1),
                    cool_down: Duration::from_millis(config.server.breaker_cool_down_ms),
                },
                RetryBudgetConfig {
                    ratio: config.server.retry_budget_ratio,
                    min_per_second: config.server.retry_budget_min_per_second,
                },
            )),
            config,
            targets,
            tenants,
            keys,
            deployer,
            decisions,
            metrics,
            ledger,
            decision_log,
            cluster,
        })
    }
}

/// Budgets continue across restarts: each tenant's and key's spend in the current UTC
/// day and month starts at what the usage ledger holds.
fn restore_spend(ledger: &Ledger, config: &Config, tenants: &HashMap<Arc<str>, Arc<Tenant>>) {
    use crate::ledger::{GroupBy, UsageQuery};
    let (day_start, month_start) = Quota::window_starts_ms();
    for t in &config.tenants {
        let Some(tenant) = tenants.get(t.id.as_str()) else {
            continue;
        };
        if !tenant.quota.has_budget() && !tenant.key_quotas.iter().any(|q| q.has_budget()) {
            continue;
        }
        let spent_since = |from_ms| {
            ledger
                .query(&UsageQuery {
                    tenant: Some(t.id.clone()),
                    from_ms: Some(from_ms),
                    to_ms: None,
                    group_by: GroupBy::Key,
                })
                .map(|rows| {
                    rows.into_iter()
                        .map(|r| (r.group, r.cost_usd))
                        .collect::<HashMap<String, f64>>()
                })
        };
        let (day, month) = match (spent_since(day_start), spent_since(month_start)) {
            (Ok(day), Ok(month)) => (day, month),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(tenant = %t.id, error = %e, "cannot read past spend from the usage ledger; budgets start at zero");
                continue;
            }
        };
        let total = |m: &HashMap<String, f64>| m.values().sum::<f64>();
        tenant.quota.restore_spend(total(&day), total(&month));
        for (key, quota) in t.api_keys().iter().zip(&tenant.key_quotas) {
            let get = |m: &HashMap<String, f64>| m.get(&key.id).copied().unwrap_or(0.0);
            quota.restore_spend(get(&day), get(&month));
        }
    }
}

fn target_info(t: &crate::config::TargetSection) -> TargetInfo {
    TargetInfo {
        id: t.id.clone(),
        provider: t.provider.clone(),
        model: t.model.clone(),
        input_price: t.input_price,
        output_price: t.output_price,
        context_window: t.context_window,
        tags: t.tags.iter().map(|s| s.to_ascii_lowercase()).collect(),
    }
}

impl crate::deploy::LiveTenants for Gateway {
    fn deployer(&self) -> &Deployer {
        &self.deployer
    }

    fn policies(&self) -> Box<dyn Iterator<Item = &TenantPolicy> + '_> {
        Box::new(self.tenants.values().map(|t| &t.policy))
    }

    fn policy(&self, tenant: &str) -> Option<&TenantPolicy> {
        self.tenants.get(tenant).map(|t| &t.policy)
    }

    fn signals(&self, tenant: &str) -> Vec<crate::policy::TargetSignals> {
        self.tenants
            .get(tenant)
            .map(|t| self.signals.snapshot(&t.targets))
            .unwrap_or_default()
    }
}
