//! What makes a policy's answer valid. The host checks every answer with these rules
//! (an invalid one sends the request down the tenant's safe route); the SDK's test
//! harness applies the same rules, so a policy's own tests catch what the gateway
//! would refuse.

use std::fmt;

/// Why an answer is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionError {
    /// A decision must name at least one target.
    NoTargets,
    /// A target index at or past the number of targets.
    OutOfRange {
        /// The index given.
        index: u32,
        /// How many targets there are.
        targets: usize,
    },
    /// The same target listed twice.
    Repeated(u32),
    /// A rejection status outside 400–599.
    BadStatus(u16),
}

impl fmt::Display for DecisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionError::NoTargets => write!(f, "the decision lists no targets"),
            DecisionError::OutOfRange { index, targets } => {
                write!(f, "target index {index} does not exist ({targets} targets)")
            }
            DecisionError::Repeated(index) => write!(f, "target index {index} is listed twice"),
            DecisionError::BadStatus(status) => {
                write!(f, "rejection status {status} is not 4xx or 5xx")
            }
        }
    }
}

impl std::error::Error for DecisionError {}

/// Checks a decision's target list against `targets` (how many the policy was
/// activated with): non-empty, every index in range, no repeats.
///
/// ```
/// use signalbox_contract::{DecisionError, validate_targets};
/// assert!(validate_targets(&[2, 0], 3).is_ok());
/// assert_eq!(validate_targets(&[0, 0], 3), Err(DecisionError::Repeated(0)));
/// ```
pub fn validate_targets(list: &[u32], targets: usize) -> Result<(), DecisionError> {
    if list.is_empty() {
        return Err(DecisionError::NoTargets);
    }
    for (pos, &index) in list.iter().enumerate() {
        if index as usize >= targets {
            return Err(DecisionError::OutOfRange { index, targets });
        }
        // Plans are a handful of targets: a scan beats a set.
        if list[..pos].contains(&index) {
            return Err(DecisionError::Repeated(index));
        }
    }
    Ok(())
}

/// Checks a rejection's status: an HTTP error status, 400 to 599.
pub fn validate_rejection_status(status: u16) -> Result<(), DecisionError> {
    if (400..=599).contains(&status) {
        Ok(())
    } else {
        Err(DecisionError::BadStatus(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_enforced() {
        assert_eq!(validate_targets(&[], 3), Err(DecisionError::NoTargets));
        assert_eq!(
            validate_targets(&[1, 3], 3),
            Err(DecisionError::OutOfRange {
                index: 3,
                targets: 3
            })
        );
        assert_eq!(
            validate_targets(&[1, 2, 1], 3),
            Err(DecisionError::Repeated(1))
        );
        assert!(validate_targets(&[2, 1, 0], 3).is_ok());
        assert!(validate_rejection_status(400).is_ok());
        assert!(validate_rejection_status(599).is_ok());
        assert_eq!(
            validate_rejection_status(302),
            Err(DecisionError::BadStatus(302))
        );
        assert!(validate_rejection_status(600).is_err());
    }
}
