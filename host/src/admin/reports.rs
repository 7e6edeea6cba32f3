//! The admin API's read-only answers, shared by its JSON paths and the dashboard:
//! the tenants with their bindings, the ledger's aggregates, the metrics text.

use super::Admin;
use super::auth::Scope;
use super::routes::error;
use crate::deploy::{CandidateMode, CandidateSample};
use crate::gateway::{Gateway, Tenant};
use crate::openai::{ApiError, codes};
use http::StatusCode;
use std::sync::Arc;

/// The tenants `scope` may see, in order of id.
pub(super) fn visible_tenants<'a>(admin: &'a Admin, scope: &Scope) -> Vec<&'a Arc<Tenant>> {
    let mut tenants: Vec<&Arc<Tenant>> = admin
        .gateway
        .tenants
        .values()
        .filter(|t| scope.allows(&t.id))
        .collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    tenants
}

/// The tenants `scope` may see, by id, each with its active binding and candidate.
pub(super) fn tenant_bindings(admin: &Admin, scope: &Scope) -> Vec<serde_json::Value> {
    let tenants = visible_tenants(admin, scope);
    let binding = |d: &crate::deploy::Deployment| serde_json::json!({"version": d.version(), "name": d.name, "label": d.label});
    tenants
        .into_iter()
        .map(|t| {
            let routing = t.policy.current();
            let candidate = routing.candidate.as_ref().map(|c| {
                let mut b = binding(&c.deployment);
                b["mode"] = match c.mode {
                    CandidateMode::Shadow => "shadow".into(),
                    CandidateMode::Canary(_) => "canary".into(),
                };
                b
            });
            serde_json::json!({
                "id": &*t.id,
                "active": binding(&routing.active),
                "candidate": candidate,
            })
        })
        .collect()
}

/// The ledger aggregates that `query` (`tenant=&from=&to=&group_by=`) asks for, within
/// what `scope` may read.
pub(super) async fn usage_rows(
    admin: &Arc<Admin>,
    scope: &Scope,
    query: &str,
) -> Result<Vec<crate::ledger::Aggregate>, ApiError> {
    let text = query;
    let mut query = crate::ledger::UsageQuery {
        tenant: None,
        from_ms: None,
        to_ms: None,
        group_by: crate::ledger::GroupBy::Target,
    };
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        let bad =
            |e: String| ApiError::invalid_request(codes::INVALID_VALUE, format!("`{k}`: {e}"));
        match &*k {
            "tenant" => query.tenant = Some(v.into_owned()),
            "from" => query.from_ms = Some(crate::ledger::parse_time(&v).map_err(bad)?),
            "to" => query.to_ms = Some(crate::ledger::parse_time(&v).map_err(bad)?),
            "group_by" => query.group_by = v.parse().map_err(bad)?,
            other => {
                return Err(ApiError::invalid_request(
                    codes::UNKNOWN_PARAMETER,
                    format!("unknown parameter `{other}` (tenant, from, to, group_by)"),
                ));
            }
        }
    }
    match (scope, &query.tenant) {
        (Scope::Tenant(own), Some(asked)) if own != asked => {
            return Err(error(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "this token may not read that tenant's usage",
            ));
        }
        (Scope::Tenant(own), None) => query.tenant = Some(own.clone()),
        _ => {}
    }
    let gateway = admin.gateway.clone();
    tokio::task::spawn_blocking(move || match &gateway.ledger {
        Some(ledger) => ledger.query(&query).map(Some),
        None => Ok(None),
    })
    .await
    .map_err(|_| ApiError::internal("the query was interrupted"))?
    .map_err(|e| {
        tracing::error!(error = %e, "usage query failed");
        ApiError::internal("the usage ledger could not be read")
    })?
    .ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "ledger_disabled",
            "no usage ledger is configured ([ledger] path or [admin] state_dir)",
        )
    })
}

/// The metrics as text, with the scrape-time gauges (targets, budgets, candidates,
/// ledger, runtime) set first.
pub(super) fn metrics_text(gateway: &Gateway) -> String {
    for (i, target) in gateway.targets.iter().enumerate() {
        let (in_flight, circuit) = gateway.signals.gauges(i);
        gateway
            .metrics
            .target_state(&target.name, in_flight, circuit);
    }
    let (mut shadows, mut canaries) = (Vec::new(), Vec::new());
    for tenant in gateway.tenants.values() {
        if tenant.quota.has_budget() {
            gateway
                .metrics
                .budget_state(&tenant.name(), tenant.quota.spent_usd());
        }
        match tenant.policy.current().candidate_sample(&tenant.name()) {
            Some(CandidateSample::Shadow(s)) => shadows.push(s),
            Some(CandidateSample::Canary(c)) => canaries.push(c),
            None => {}
        }
    }
    gateway.metrics.candidates_state(shadows, canaries);
    if let Some(ledger) = &gateway.ledger {
        gateway.metrics.ledger_state(ledger.counts());
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        gateway
            .metrics
            .runtime_state(runtime.metrics().num_alive_tasks());
    }
    gateway.metrics.render()
}

/// In a fleet, the fleet's counts of `tenant`'s active and candidate versions (see
/// `cluster::stats`); `None` without `[cluster]`, null when Redis does not answer.
pub(super) async fn fleet_counts(gateway: &Gateway, tenant: &Tenant) -> Option<serde_json::Value> {
    let cluster = gateway.cluster.as_ref()?;
    let routing = tenant.policy.current();
    Some(
        cluster
            .fleet_report(&tenant.id, &routing)
            .await
            .unwrap_or_default(),
    )
}
