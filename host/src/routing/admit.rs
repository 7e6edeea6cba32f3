//! Admission: a request estimated at some tokens against the tenant's concurrency
//! limit and the tenant's and the key's quotas, before its policy is asked anything.

use crate::cluster::Cluster;
use crate::config::FailMode;
use crate::gateway::{Gateway, Tenant};
use crate::openai::ApiError;
use crate::quota::{self, QuotaError, Reservation};
use crate::tenancy::Caller;
use tokio::sync::OwnedSemaphorePermit;

/// The `code` (and metrics reason) of a request refused because the fleet's shared
/// store cannot be reached (`cluster.on_failure = "fail_closed"`).
pub(crate) const SHARED_LIMITS_UNAVAILABLE: &str = "shared_limits_unavailable";

/// The metrics reason of a request admitted on this replica's own limits because the
/// shared store cannot be reached (`fail_open`); not a refusal, but counted beside them.
const SHARED_LIMITS_DOWN_LOCAL: &str = "shared_limits_local";

/// The `code` (and metrics reason) of a request over its tenant's `max_in_flight`.
pub(crate) const CONCURRENCY_LIMIT: &str = "concurrency_limit";

/// What an admitted request holds until it ends.
pub(super) struct Admitted {
    /// Its tokens, reserved against the quotas.
    pub reservation: Reservation,
    /// Its slot among the tenant's requests in flight, when the tenant has a limit.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// Takes a slot among the tenant's requests in flight (when limited) and reserves
/// `tokens` against the tenant's and the key's quotas, or says why not in the error
/// the client receives (429 with `Retry-After`, or 403 for a spent budget with no
/// reset in sight). A request refused for concurrency takes nothing from the quotas.
pub(super) async fn admit(
    gateway: &Gateway,
    tenant: &Tenant,
    caller: &Caller,
    tokens: u64,
    request_id: &str,
) -> Result<Admitted, ApiError> {
    // A try, never a wait: a tenant at its limit is told at once, and its queue (if
    // any) is the client's, not the gateway's memory.
    let slot = match &tenant.in_flight {
        None => None,
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                gateway.metrics.rejection(&tenant.name(), CONCURRENCY_LIMIT);
                tracing::info!(
                    request_id,
                    tenant = %caller.tenant,
                    key = %caller.key_id,
                    code = CONCURRENCY_LIMIT,
                    "request refused by the tenant's concurrency limit"
                );
                return Err(ApiError::rate_limited(
                    CONCURRENCY_LIMIT,
                    "Too many requests in flight for this tenant; retry when one ends.",
                    gateway.config.server.overload_retry_after_secs,
                ));
            }
        },
    };
    let Some(key_quota) = tenant.key_quotas.get(caller.key_index) else {
        return Err(ApiError::internal("The API key's quota is missing."));
    };
    let reservation = match &gateway.cluster {
        Some(cluster) if !(tenant.quota.is_unlimited() && key_quota.is_unlimited()) => {
            shared_admit(gateway, cluster, tenant, key_quota, tokens, request_id).await?
        }
        _ => quota::admit(&tenant.quota, key_quota, tokens),
    };
    let reservation = reservation.map_err(|refused| {
        gateway.metrics.rejection(&tenant.name(), refused.code());
        tracing::info!(
            request_id,
            tenant = %caller.tenant,
            key = %caller.key_id,
            code = refused.code(),
            "request refused by a quota"
        );
        let message = refused.to_string();
        match (&refused, refused.retry_after_secs()) {
            (QuotaError::Budget { .. }, Some(secs)) => ApiError::budget_exceeded(message, secs),
            (_, Some(secs)) => ApiError::rate_limited(refused.code(), message, secs),
            (_, None) => ApiError::over_limit(refused.code(), message),
        }
    })?;
    Ok(Admitted { reservation, slot })
}

/// Admission against the fleet's shared limits; when the shared store does not answer
/// in time, the cluster's failure mode decides: this replica's own limits
/// (`fail_open`), or a 503 (`fail_closed`).
async fn shared_admit(
    gateway: &Gateway,
    cluster: &std::sync::Arc<Cluster>,
    tenant: &Tenant,
    key_quota: &std::sync::Arc<quota::Quota>,
    tokens: u64,
    request_id: &str,
) -> Result<Result<Reservation, QuotaError>, ApiError> {
    let quotas = [&*tenant.quota, &**key_quota];
    // Refused before Redis is asked: waiting could never help.
    if let Err(never) = quota::fits(quotas, tokens) {
        return Ok(Err(never));
    }
    match cluster.admit(quotas, tokens).await {
        Ok(admitted) => Ok(
            admitted.map(|shared| Reservation::shared(&tenant.quota, key_quota, tokens, shared))
        ),
        Err(e) => match cluster.on_failure {
            FailMode::FailOpen => {
                gateway
                    .metrics
                    .rejection(&tenant.name(), SHARED_LIMITS_DOWN_LOCAL);
                Ok(
                    quota::admit_share(&tenant.quota, key_quota, tokens, cluster.replicas())
                        .map(|local| local.with_shared(cluster.spend_only(quotas))),
                )
            }
            FailMode::FailClosed => {
                gateway
                    .metrics
                    .rejection(&tenant.name(), SHARED_LIMITS_UNAVAILABLE);
                tracing::warn!(request_id, error = %e, "request refused: the shared limits cannot be checked");
                Err(ApiError::unavailable(
                    SHARED_LIMITS_UNAVAILABLE,
                    "The gateway cannot check this tenant's shared limits right now; retry shortly.",
                    gateway.config.server.overload_retry_after_secs,
                ))
            }
        },
    }
}
