//! A policy's answer.

/// What a policy answers for one request: targets to try in order, or a rejection.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Try these targets in order (indices into the activation's target list).
    Route {
        /// Primary first, then fallbacks; non-empty, in range, no repeats.
        targets: Vec<u32>,
        /// A few words on why, for response headers and decision logs.
        reason: String,
    },
    /// Refuse the request with this HTTP status (400–599) and message.
    Reject {
        /// HTTP status, 400 to 599.
        status: u16,
        /// Shown to the client.
        message: String,
    },
}

impl Decision {
    /// Routes to `targets` in order, giving `reason`.
    pub fn route<I>(targets: I, reason: impl Into<String>) -> Self
    where
        I: IntoIterator,
        I::Item: TryInto<u32>,
    {
        Decision::Route {
            targets: targets
                .into_iter()
                .map(|i| i.try_into().unwrap_or(u32::MAX))
                .collect(),
            reason: reason.into(),
        }
    }

    /// Rejects the request with `status` and `message`.
    pub fn reject(status: u16, message: impl Into<String>) -> Self {
        Decision::Reject {
            status,
            message: message.into(),
        }
    }

    /// The chosen target indices; empty for a rejection.
    pub fn targets(&self) -> &[u32] {
        match self {
            Decision::Route { targets, .. } => targets,
            Decision::Reject { .. } => &[],
        }
    }

    /// The first choice, if routed.
    pub fn primary(&self) -> Option<u32> {
        self.targets().first().copied()
    }

    /// Checks the answer the way the host does, for `target_count` targets: routed
    /// lists must be non-empty, in range and without repeats; rejections need a 4xx or
    /// 5xx status. The host replaces an invalid answer with the tenant's safe route.
    pub fn validate(&self, target_count: usize) -> Result<(), String> {
        // The rules themselves live in the contract crate, which the host applies too.
        match self {
            Decision::Route { targets, .. } => {
                signalbox_contract::validate_targets(targets, target_count)
            }
            Decision::Reject { status, .. } => {
                signalbox_contract::validate_rejection_status(*status)
            }
        }
        .map_err(|e| e.to_string())
    }
}
