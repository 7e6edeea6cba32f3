//! The JSON the dashboard's pages poll. Each answer is the admin API's own data
//! (bindings, the policy report, ledger aggregates, the metrics registry, the decision
//! log), cut to what the session's scope may see.

use super::super::Admin;
use super::super::auth::Scope;
use super::super::reports::{
    fleet_counts, metrics_text, tenant_bindings, usage_rows, visible_tenants,
};
use super::super::routes::error;
use super::{decisions, metrics_text as metrics};
use crate::openai::{ApiError, ResponseBody, json};
use http::{Response, StatusCode};
use std::sync::Arc;

/// What a JSON endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Query {
    /// Traffic, latency and states from the metrics.
    Overview,
    /// The tenants with their bindings.
    Tenants,
    /// A tenant's policy report.
    Policies,
    /// Ledger aggregates.
    Usage,
    /// A tenant's recent decisions.
    Decisions,
    /// One decision-log entry.
    Decision,
    /// Each tenant's spend against its budgets, and its rate limits.
    Budgets,
}

/// The path's and query's parameters.
pub struct Target<'a> {
    /// The tenant in the path.
    pub tenant: Option<&'a str>,
    /// The request id in the path.
    pub request_id: Option<&'a str>,
    /// The query string.
    pub query: &'a str,
}

/// Answers `query` for a session of `scope`.
pub async fn answer(
    admin: &Arc<Admin>,
    scope: &Scope,
    query: Query,
    target: Target<'_>,
) -> Result<Response<ResponseBody>, ApiError> {
    let gateway = &admin.gateway;
    let body = match query {
        Query::Overview => {
            let samples = metrics::parse(&metrics_text(gateway));
            let own_targets: Vec<&str> = gateway
                .tenants
                .values()
                .filter(|t| scope.allows(&t.id))
                .flat_map(|t| t.targets.iter().filter_map(|&i| gateway.targets.get(i)))
                .map(|t| &*t.name.0)
                .collect();
            let overview = metrics::overview(
                &samples,
                |t| scope.allows(t),
                |t| *scope == Scope::Operator || own_targets.contains(&t),
            );
            serde_json::to_value(overview).unwrap_or_default()
        }
        Query::Tenants => serde_json::json!({ "data": tenant_bindings(admin, scope) }),
        Query::Budgets => serde_json::json!({ "data": budgets(admin, scope) }),
        Query::Usage => {
            serde_json::json!({ "data": usage_rows(admin, scope, target.query).await? })
        }
        Query::Policies => {
            let tenant = allowed_tenant(admin, scope, target.tenant)?;
            let (deployer_gateway, reported) = (gateway.clone(), tenant.clone());
            let mut report = tokio::task::spawn_blocking(move || {
                reported.policy.report(&deployer_gateway.deployer)
            })
            .await
            .map_err(|_| ApiError::internal("the report was interrupted"))?
            .map_err(|e| {
                tracing::error!(error = %e, "policy report failed");
                ApiError::internal("the policy store could not be read")
            })?;
            if let Some(fleet) = fleet_counts(gateway, &tenant).await {
                report["fleet"] = fleet;
            }
            report
        }
        Query::Decisions | Query::Decision => {
            let tenant = allowed_tenant(admin, scope, target.tenant)?;
            let path = gateway.config.decision_log.path.clone().ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    "decision_log_disabled",
                    "no decision log is configured ([decision_log] path)",
                )
            })?;
            let id = target.request_id.map(str::to_owned);
            let found = tokio::task::spawn_blocking(move || match id {
                None => decisions::recent(path.as_ref(), &tenant.id).map(|d| Some(d.into())),
                Some(id) => decisions::find(path.as_ref(), &tenant.id, &id),
            })
            .await
            .map_err(|_| ApiError::internal("the read was interrupted"))?
            .map_err(|e| {
                tracing::error!(error = %e, "decision log read failed");
                ApiError::internal("the decision log could not be read")
            })?;
            match (query, found) {
                (Query::Decisions, found) => {
                    serde_json::json!({ "data": found.unwrap_or_else(|| serde_json::json!([])) })
                }
                (_, Some(entry)) => entry,
                (_, None) => {
                    return Err(error(
                        StatusCode::NOT_FOUND,
                        "decision_not_found",
                        "no such decision among the recent ones of this tenant",
                    ));
                }
            }
        }
    };
    Ok(json(StatusCode::OK, &body))
}

/// The tenant in the path, when `scope` may see it: 403 for another tenant's (before
/// saying whether it exists), 404 for none.
fn allowed_tenant(
    admin: &Admin,
    scope: &Scope,
    tenant: Option<&str>,
) -> Result<Arc<crate::gateway::Tenant>, ApiError> {
    let id = tenant.unwrap_or_default();
    if !scope.allows(id) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "this session may not see that tenant",
        ));
    }
    admin.gateway.tenants.get(id).cloned().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "tenant_not_found",
            format!("no tenant `{id}`"),
        )
    })
}

/// Each tenant `scope` may see: its spend in the current UTC day and month against its
/// budgets (the figures `/metrics` exports as `signalbox_budget_spent_usd`), and its
/// rate limits.
fn budgets(admin: &Admin, scope: &Scope) -> Vec<serde_json::Value> {
    visible_tenants(admin, scope)
        .into_iter()
        .map(|t| {
            let limits = t.quota.limits();
            let (day, month) = t.quota.spent_usd();
            serde_json::json!({
                "tenant": &*t.id,
                "day": {"spent_usd": day, "limit_usd": limits.usd_per_day},
                "month": {"spent_usd": month, "limit_usd": limits.usd_per_month},
                "requests_per_minute": limits.requests_per_minute,
                "tokens_per_minute": limits.tokens_per_minute,
            })
        })
        .collect()
}
