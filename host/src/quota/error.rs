//! Why a request was not admitted. Messages are written for the client: they say which
//! limit (the tenant's or the key's, by id), its value, and when to come back.

use super::budget::Period;
use std::fmt;
use std::sync::Arc;

/// Whose limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A tenant's, shared by all its keys.
    Tenant(Arc<str>),
    /// One key's, by key id.
    Key(Arc<str>),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant(id) => write!(f, "tenant `{id}`"),
            Scope::Key(id) => write!(f, "API key `{id}`"),
        }
    }
}

/// A request refused by a quota.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    /// Requests per minute.
    #[error(
        "Rate limit reached for requests: the limit of {scope} is {limit} per minute. Try again in {retry_after_secs} s."
    )]
    Requests {
        /// Whose limit.
        scope: Scope,
        /// Requests per minute.
        limit: u32,
        /// Seconds until one more request fits.
        retry_after_secs: u64,
    },
    /// Tokens per minute.
    #[error(
        "Rate limit reached for tokens: the limit of {scope} is {limit} per minute and this request needs about {needed}. Try again in {retry_after_secs} s."
    )]
    Tokens {
        /// Whose limit.
        scope: Scope,
        /// Tokens per minute.
        limit: u32,
        /// The request's estimate: input tokens plus `max_tokens`.
        needed: u64,
        /// Seconds until the estimate fits.
        retry_after_secs: u64,
    },
    /// A request larger than a whole minute's tokens: waiting would not help.
    #[error(
        "This request needs about {needed} tokens (input plus max_tokens), more than the whole limit of {scope}, {limit} tokens per minute: it can never be admitted. Shorten the input or lower max_tokens."
    )]
    TokensNeverFit {
        /// Whose limit.
        scope: Scope,
        /// Tokens per minute.
        limit: u32,
        /// The request's estimate.
        needed: u64,
    },
    /// A spend budget.
    #[error(
        "Budget exceeded: {scope} has used its {period} budget of ${limit_usd} (UTC). It resets in {retry_after_secs} s."
    )]
    Budget {
        /// Whose budget.
        scope: Scope,
        /// Which window.
        period: Period,
        /// The budget, USD.
        limit_usd: f64,
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
}

impl QuotaError {
    /// The OpenAI-style error `code`, naming the limit.
    pub fn code(&self) -> &'static str {
        match self {
            QuotaError::Requests { .. } => "rate_limit_requests",
            QuotaError::Tokens { .. } | QuotaError::TokensNeverFit { .. } => "rate_limit_tokens",
            QuotaError::Budget { .. } => "budget_exceeded",
        }
    }

    /// Seconds for `Retry-After`; `None` when retrying cannot help.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            QuotaError::Requests {
                retry_after_secs, ..
            }
            | QuotaError::Tokens {
                retry_after_secs, ..
            }
            | QuotaError::Budget {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            QuotaError::TokensNeverFit { .. } => None,
        }
    }

    /// Whose limit refused.
    pub fn scope(&self) -> &Scope {
        match self {
            QuotaError::Requests { scope, .. }
            | QuotaError::Tokens { scope, .. }
            | QuotaError::TokensNeverFit { scope, .. }
            | QuotaError::Budget { scope, .. } => scope,
        }
    }
}
