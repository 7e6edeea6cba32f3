//! A policy's answer, as the host keeps it once checked.

/// A checked routing answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Try these target indices in order.
    Route {
        /// Non-empty, in range, no repeats.
        targets: Vec<u32>,
        /// Why (at most [`MAX_REASON`](signalbox_contract::MAX_REASON) bytes).
        reason: String,
    },
    /// Refuse the request.
    Reject {
        /// 400–599.
        status: u16,
        /// Shown to the client (at most
        /// [`MAX_MESSAGE`](signalbox_contract::MAX_MESSAGE) bytes).
        message: String,
    },
}

impl RouteDecision {
    /// Checks a route answer against `targets` (how many the policy was activated
    /// with) and trims its reason, by the contract's rules.
    pub(crate) fn route(
        targets: Vec<u32>,
        mut reason: String,
        target_count: usize,
    ) -> Result<Self, signalbox_contract::DecisionError> {
        signalbox_contract::validate_targets(&targets, target_count)?;
        signalbox_contract::truncate_at_char(&mut reason, signalbox_contract::MAX_REASON);
        Ok(RouteDecision::Route { targets, reason })
    }

    /// Checks a rejection and trims its message, by the contract's rules.
    pub(crate) fn reject(
        status: u16,
        mut message: String,
    ) -> Result<Self, signalbox_contract::DecisionError> {
        signalbox_contract::validate_rejection_status(status)?;
        signalbox_contract::truncate_at_char(&mut message, signalbox_contract::MAX_MESSAGE);
        Ok(RouteDecision::Reject { status, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_and_trimmed() {
        let long = "é".repeat(200);
        match RouteDecision::route(vec![1, 0], long, 2) {
            Ok(RouteDecision::Route { reason, .. }) => {
                assert!(reason.len() <= signalbox_contract::MAX_REASON);
                assert!(reason.chars().all(|c| c == 'é'));
            }
            other => panic!("{other:?}"),
        }
        assert!(RouteDecision::route(vec![2], String::new(), 2).is_err());
        assert!(RouteDecision::reject(200, String::new()).is_err());
        assert!(RouteDecision::reject(403, "no".into()).is_ok());
    }
}
