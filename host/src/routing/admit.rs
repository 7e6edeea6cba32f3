//! Admission: a request estimated at some tokens against the tenant's and the key's
//! quotas, before its policy is asked anything.

use crate::gateway::{Gateway, Tenant};
use crate::openai::ApiError;
use crate::quota::{self, QuotaError, Reservation};
use crate::tenancy::Caller;

/// Reserves `tokens` against the tenant's and the key's quotas, or says why not in the
/// error the client receives (429 with `Retry-After`, or 403 for a spent budget with
/// no reset in sight).
pub(super) fn admit(
    gateway: &Gateway,
    tenant: &Tenant,
    caller: &Caller,
    tokens: u64,
    request_id: &str,
) -> Result<Reservation, ApiError> {
    let Some(key_quota) = tenant.key_quotas.get(caller.key_index) else {
        return Err(ApiError::internal("The API key's quota is missing."));
    };
    quota::admit(&tenant.quota, key_quota, tokens).map_err(|refused| {
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
    })
}
